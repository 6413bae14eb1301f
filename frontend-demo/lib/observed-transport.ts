// Wraps any ChatTransport and reports what the Chat asks of it, so that the connection badge
// works the same on every transport: a send or a resume starts, a resume finds an answer
// or not, chunks flow, the stream ends.
import type { ChatTransport, UIMessage, UIMessageChunk } from 'ai';

export type RequestKind = 'send' | 'resume';

export type TransportEvent =
  | { type: 'request'; kind: RequestKind }
  /** A resume was answered: `found` false when nothing was running (the 204 / `no-active`). */
  | { type: 'resume-answer'; found: boolean }
  | { type: 'chunk'; kind: RequestKind }
  | { type: 'end'; kind: RequestKind; outcome: 'done' | 'cancelled' | 'failed' };

function observeStream(
  stream: ReadableStream<UIMessageChunk>,
  kind: RequestKind,
  onEvent: (event: TransportEvent) => void,
): ReadableStream<UIMessageChunk> {
  const reader = stream.getReader();
  let ended = false;
  const end = (outcome: 'done' | 'cancelled' | 'failed') => {
    if (ended) return;
    ended = true;
    onEvent({ type: 'end', kind, outcome });
  };
  return new ReadableStream<UIMessageChunk>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          end('done');
          controller.close();
        } else {
          onEvent({ type: 'chunk', kind });
          controller.enqueue(value);
        }
      } catch (error) {
        end('failed');
        controller.error(error);
      }
    },
    async cancel(reason) {
      end('cancelled');
      await reader.cancel(reason).catch(() => {});
    },
  });
}

export function observeTransport<M extends UIMessage>(
  inner: ChatTransport<M>,
  onEvent: (event: TransportEvent) => void,
): ChatTransport<M> {
  return {
    get resumeStreamIsReplay() {
      return inner.resumeStreamIsReplay;
    },
    close: () => inner.close?.(),
    async sendMessages(options) {
      onEvent({ type: 'request', kind: 'send' });
      try {
        return observeStream(await inner.sendMessages(options), 'send', onEvent);
      } catch (error) {
        onEvent({ type: 'end', kind: 'send', outcome: 'failed' });
        throw error;
      }
    },
    async reconnectToStream(options) {
      onEvent({ type: 'request', kind: 'resume' });
      let stream: ReadableStream<UIMessageChunk> | null;
      try {
        stream = await inner.reconnectToStream(options);
      } catch (error) {
        onEvent({ type: 'end', kind: 'resume', outcome: 'failed' });
        throw error;
      }
      onEvent({ type: 'resume-answer', found: stream !== null });
      if (stream === null) {
        onEvent({ type: 'end', kind: 'resume', outcome: 'done' });
        return null;
      }
      return observeStream(stream, 'resume', onEvent);
    },
  };
}
