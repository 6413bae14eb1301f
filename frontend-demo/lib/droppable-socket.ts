// A WebSocket class for the WebSocket transports that can cut its own sockets on purpose,
// the counterpart of droppable-fetch.ts.
//
// It also keeps `abort` frames to itself. The stock WebSocketChatTransport sends one (and the
// bridge then stops the generation) whenever a stream merely ends early on this page: a chat
// that unmounts, a resume that replaces another. In this demo only the Stop button stops a
// generation (POST /api/chat/{id}/stop, on every transport), as with SSE, where closing a
// connection never stops anything.

export const SOCKET_DROP_CODE = 4000;
const SOCKET_DROP_REASON = 'connection dropped on purpose';

export type DroppableSocket = {
  /** The class to hand to the transport (undefined where there is no WebSocket). */
  WebSocket: typeof WebSocket | undefined;
  /** Close every socket that is open or opening. Returns how many were closed. */
  drop: () => number;
};

function isAbortFrame(data: unknown): boolean {
  // An abort frame is tiny; a send frame carries the whole history: parse only the small.
  if (typeof data !== 'string' || data.length > 256 || !data.includes('abort')) return false;
  try {
    return (JSON.parse(data) as { type?: unknown })?.type === 'abort';
  } catch {
    return false;
  }
}

export function createDroppableSocket(): DroppableSocket {
  const live = new Set<WebSocket>();
  if (typeof WebSocket === 'undefined') return { WebSocket: undefined, drop: () => 0 };

  class DroppableWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      live.add(this);
      this.addEventListener('close', () => live.delete(this));
    }

    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView) {
      if (isAbortFrame(data)) return;
      super.send(data);
    }
  }

  return {
    WebSocket: DroppableWebSocket,
    drop: () => {
      const sockets = [...live].filter((socket) => socket.readyState <= WebSocket.OPEN);
      sockets.forEach((socket) => socket.close(SOCKET_DROP_CODE, SOCKET_DROP_REASON));
      return sockets.length;
    },
  };
}
