// A `fetch` for the HTTP transports that can cut its own connections on purpose.
//
// `drop()` aborts the underlying HTTP request (the TCP connection really closes) and makes
// the response body fail with the same kind of error a real network drop produces in a
// browser (`TypeError: network error`). useChat therefore takes exactly the path it takes on
// a real outage (status `error`, a "disconnect"), and the page's recovery logic resumes the
// stream with `resumeStream()`, without a reload. (The resilient transport, given the same
// fetch, reconnects by itself from its last offset and the Chat never sees the drop.)

export const DROP_MESSAGE = 'network error: connection dropped on purpose';

export type DroppableFetch = {
  fetch: typeof globalThis.fetch;
  /** Cut every in-flight request. Returns how many were cut. */
  drop: () => number;
  /** Number of requests whose response is still being read. */
  inFlight: () => number;
};

// Statuses whose Response must not have a body (the constructor throws otherwise).
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

export function createDroppableFetch(): DroppableFetch {
  const live = new Set<() => void>();

  const droppableFetch: typeof globalThis.fetch = async (input, init) => {
    const cut = new AbortController();
    const signal = init?.signal ? AbortSignal.any([init.signal, cut.signal]) : cut.signal;
    let dropped = false;
    const drop = () => {
      dropped = true;
      cut.abort(new DOMException('connection dropped on purpose', 'AbortError'));
    };
    live.add(drop);

    const finish = () => live.delete(drop);
    const translate = (error: unknown): unknown => {
      finish();
      return dropped ? new TypeError(DROP_MESSAGE) : error;
    };

    let response: Response;
    try {
      response = await globalThis.fetch(input, { ...init, signal });
    } catch (error) {
      throw translate(error);
    }
    if (!response.body || NULL_BODY_STATUSES.has(response.status)) {
      finish();
      return response;
    }

    const reader = response.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            finish();
            controller.close();
          } else {
            controller.enqueue(value);
          }
        } catch (error) {
          controller.error(translate(error));
        }
      },
      async cancel(reason) {
        finish();
        await reader.cancel(reason).catch(() => {});
      },
    });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };

  return {
    fetch: droppableFetch,
    drop: () => {
      const cuts = [...live];
      cuts.forEach((cut) => cut());
      return cuts.length;
    },
    inFlight: () => live.size,
  };
}

/** The errors useChat classifies as a disconnect (see `makeRequestImpl` in `ai`). */
export function isNetworkError(error: unknown): boolean {
  if (!(error instanceof TypeError)) return false;
  const message = error.message.toLowerCase();
  return message.includes('fetch') || message.includes('network') || message === 'load failed';
}
