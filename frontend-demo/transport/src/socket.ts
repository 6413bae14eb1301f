import type { UIMessageChunk } from 'ai';
import { InvalidResponse, RetryableError, ServerError, TierUnusable, abortError } from './errors.js';
import type { Hub } from './hub.js';
import type { Outcome, Session } from './session.js';

/** What a request registered on the socket hears. */
interface FrameHandler {
  frame(frame: Record<string, unknown>): void;
  disconnect(error: Error): void;
}

const OPEN = 1;
// The server closes with these when a frame itself is refused: repeating it cannot help.
const REFUSED_CODES = new Set([1003, 1008, 1009]);

function newRequestId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let id = '';
  for (let index = 0; index < 16; index++) id += alphabet[Math.floor(Math.random() * alphabet.length)];
  return id;
}

/**
 * One WebSocket carrying many requests, told apart by `requestId` (the frames of the AI
 * SDK's `WebSocketChatTransport`). Any frame, the bridge's keep-alives included, proves the
 * socket alive; silence for `stallMs` while requests wait closes it, and every request then
 * reconnects.
 */
export class SocketLink {
  closed = false;
  private readonly handlers = new Map<string, FrameHandler>();
  private lastFrameAt = Date.now();
  private readonly watchdog: ReturnType<typeof setInterval>;

  private constructor(
    private readonly socket: WebSocket,
    private readonly stallMs: number,
    private readonly onClosed: (link: SocketLink) => void,
  ) {
    socket.onmessage = event => this.onMessage(event.data);
    socket.onclose = event => {
      const reason = `the socket closed (code ${event.code}${event.reason ? `: ${event.reason}` : ''})`;
      this.shutdown(REFUSED_CODES.has(event.code) ? new ServerError(reason) : new RetryableError(reason));
    };
    socket.onerror = () => {}; // a close event follows and says more
    this.watchdog = setInterval(() => {
      if (this.handlers.size > 0 && Date.now() - this.lastFrameAt > stallMs) {
        this.close(4000, 'stalled');
        this.shutdown(new RetryableError(`the socket stalled (${stallMs} ms without a frame)`));
      }
    }, Math.max(50, Math.min(1000, stallMs / 4)));
  }

  /** Opens a socket; a refused or hanging upgrade means this tier is unusable here. */
  static connect(
    url: string,
    WebSocketClass: typeof WebSocket,
    timeoutMs: number,
    stallMs: number,
    onClosed: (link: SocketLink) => void,
  ): Promise<SocketLink> {
    return new Promise((resolve, reject) => {
      let socket: WebSocket;
      try {
        socket = new WebSocketClass(url);
      } catch (error) {
        reject(new TierUnusable('websocket', `cannot open a WebSocket: ${(error as Error).message}`));
        return;
      }
      const fail = (why: string) => {
        clearTimeout(timer);
        socket.onopen = socket.onclose = socket.onerror = null;
        try {
          socket.close();
        } catch {
          // not open yet
        }
        reject(new TierUnusable('websocket', why));
      };
      const timer = setTimeout(() => fail(`no WebSocket upgrade within ${timeoutMs} ms`), timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(new SocketLink(socket, stallMs, onClosed));
      };
      socket.onerror = () => fail('the WebSocket upgrade failed');
      socket.onclose = event => fail(`the WebSocket upgrade failed (code ${event.code})`);
    });
  }

  register(requestId: string, handler: FrameHandler): void {
    if (this.handlers.size === 0) this.lastFrameAt = Date.now();
    this.handlers.set(requestId, handler);
  }

  unregister(requestId: string): void {
    this.handlers.delete(requestId);
  }

  /** Sends a frame now; throws when the socket is not open (nothing was sent). */
  send(frame: object): void {
    if (this.closed || this.socket.readyState !== OPEN) {
      throw new RetryableError('the socket is not open');
    }
    this.socket.send(JSON.stringify(frame));
  }

  close(code = 1000, reason = 'closed by the client'): void {
    try {
      this.socket.close(code, reason);
    } catch {
      // already closed
    }
    this.shutdown(new RetryableError(reason));
  }

  private onMessage(data: unknown): void {
    this.lastFrameAt = Date.now();
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(String(data)) as Record<string, unknown>;
    } catch {
      this.close(4002, 'invalid frame');
      this.shutdown(new InvalidResponse('the server sent a frame that is not JSON'));
      return;
    }
    // Unknown request ids (finished requests, the bridge's keep-alive) are ignored.
    const handler = typeof frame?.requestId === 'string' ? this.handlers.get(frame.requestId) : undefined;
    handler?.frame(frame);
  }

  private shutdown(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    this.onClosed(this);
    for (const handler of handlers) handler.disconnect(error);
  }
}

/**
 * One request on the shared socket: a `send` the first time (the turn), a `resume` from the
 * cursor after that. The bridge's `start` frame names the generation (and, for a
 * continuation, where its prelude ends) so a later resume asks for exactly what is missing.
 */
export async function socketAttempt(hub: Hub, session: Session): Promise<Outcome> {
  const link = await hub.socket();
  if (session.stopped) throw abortError();
  const { chatId, headers, body, metadata, turn } = session.request;
  const op = session.kind === 'send' && !session.sent ? 'send' : 'resume';
  const requestId = newRequestId();
  const cursor = session.resumeCursor();
  const frame =
    op === 'send'
      ? { type: 'send', requestId, id: chatId, ...turn, headers, body, metadata }
      : {
          type: 'resume',
          requestId,
          id: chatId,
          headers,
          body,
          metadata,
          ...(cursor >= 0 ? { lastSequence: cursor } : {}),
          ...(session.generationId != null ? { generationId: session.generationId } : {}),
        };
  return new Promise<Outcome>((resolve, reject) => {
    const settle = () => {
      link.unregister(requestId);
      unhook();
    };
    const unhook = session.onEnd(reason => {
      settle();
      // Only a stop tells the server anything: it stops the generation, as the stop
      // endpoint does. A cancel or a closed transport just stops listening.
      if (reason === 'abort' && hub.settings.stopOnAbort) {
        try {
          link.send({ type: 'abort', requestId });
        } catch {
          // the socket is gone: the stop endpoint is called as well
        }
      }
      reject(abortError());
    });
    link.register(requestId, {
      frame: received => {
        try {
          switch (received.type) {
            case 'start':
              if (typeof received.generationId === 'string') session.generationId = received.generationId;
              if (op === 'send' && typeof received.preludeEnd === 'number') session.preludeEnd = received.preludeEnd;
              session.confirm();
              return;
            case 'chunk':
              session.deliver(received.sequence as number, received.chunk as UIMessageChunk);
              return;
            case 'end':
              settle();
              resolve('done');
              return;
            case 'no-active':
              settle();
              resolve('no-active');
              return;
            case 'error':
              settle();
              reject(new ServerError(typeof received.errorText === 'string' ? received.errorText : 'WebSocket chat server returned an error.'));
              return;
            default:
              return; // a frame type from a newer server
          }
        } catch (error) {
          settle();
          reject(error);
        }
      },
      disconnect: error => {
        settle();
        reject(error);
      },
    });
    try {
      link.send(frame);
    } catch (error) {
      settle();
      reject(error);
      return;
    }
    if (op === 'send') session.sent = true;
  });
}
