import type { UIMessageChunk } from 'ai';
import { Watchdog } from './backoff.js';
import { InvalidResponse, RetryableError, ServerError, TierUnusable, abortError } from './errors.js';
import type { Hub } from './hub.js';
import type { Outcome, Session } from './session.js';
import { SseParser } from './sse.js';

/** The bridge's long-poll page (GET {api}/{id}/poll, POST {api}/poll). */
export interface PollPage {
  generationId: string | null;
  chunks: { offset: number; chunk: UIMessageChunk }[];
  cursor: number;
  done: boolean;
  outcome?: string;
}

const GENERATION_HEADER = 'x-bridge-generation-id';

function isPollPage(value: unknown): value is PollPage {
  const page = value as PollPage | null;
  return (
    page != null &&
    typeof page === 'object' &&
    Array.isArray(page.chunks) &&
    typeof page.cursor === 'number' &&
    typeof page.done === 'boolean'
  );
}

/**
 * An error answer. The server's own refusals (JSON `{"error": {...}}`, any 4xx) are final;
 * a gateway error without that body, and for idempotent reads any 5xx, 408 or 429, is a
 * connection problem worth retrying.
 */
async function httpError(response: Response, idempotent: boolean): Promise<Error> {
  const text = await response.text().catch(() => '');
  const status = response.status;
  let fromBridge = false;
  try {
    fromBridge = typeof JSON.parse(text)?.error?.code === 'string';
  } catch {
    // not JSON: a proxy's page
  }
  if (idempotent && (status === 408 || status === 429 || status >= 500)) {
    return new RetryableError(`HTTP ${status}`);
  }
  if (!fromBridge && status >= 502 && status <= 504) {
    return new RetryableError(`HTTP ${status} from a gateway`);
  }
  return new ServerError(text || `HTTP ${status}`, status, text);
}

/** A fetch that ends with the session (stop, cancel) and reports a network failure as
 * retryable. */
async function request(hub: Hub, session: Session, url: string, init: RequestInit, signal: AbortSignal): Promise<Response> {
  try {
    return await hub.fetch(url, { credentials: hub.credentials, ...init, signal });
  } catch (error) {
    if (session.stopped) throw abortError();
    throw new RetryableError(`network error: ${(error as Error)?.message ?? String(error)}`);
  }
}

/** An AbortController that fires when the session ends; `release` when done with it. */
function linked(session: Session): { controller: AbortController; release: () => void } {
  const controller = new AbortController();
  const unhook = session.onEnd(() => controller.abort());
  return {
    controller,
    release: () => {
      unhook();
      controller.abort(); // frees the connection when an attempt returns early
    },
  };
}

/**
 * Starts the turn with POST {api}/poll: the same body as POST {api}, answered with a JSON
 * page as soon as the turn has started (a short response, so it passes proxies that buffer
 * streams), which names the generation and moves the cursor past the prelude of a
 * continuation. Not cut short by a stop: its answer names the generation to stop.
 * Returns whether the answer is already complete.
 */
export function startTurn(hub: Hub, session: Session): Promise<boolean> {
  const run = async (): Promise<boolean> => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), hub.settings.firstByteTimeoutMs);
    const { chatId, body, headers, turn } = session.request;
    try {
      const response = await request(
        hub,
        session,
        hub.url('/poll', { wait: 0 }),
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ ...body, id: chatId, ...turn }),
        },
        controller.signal,
      ).catch(error => {
        throw controller.signal.aborted && !session.stopped
          ? new RetryableError('no answer to the start request in time')
          : error;
      });
      if (!response.ok) throw await httpError(response, false);
      const page: unknown = await response.json().catch(() => undefined);
      if (!isPollPage(page)) throw new InvalidResponse('the start request got no page');
      session.applyPage(page);
      return page.done;
    } finally {
      clearTimeout(timer);
    }
  };
  const started = run();
  session.startInFlight = started;
  return started;
}

function query(session: Session): Record<string, string | number | undefined> {
  const cursor = session.resumeCursor();
  return { generation: session.generationId, cursor: cursor >= 0 ? cursor : undefined };
}

/**
 * Reads GET {api}/{id}/stream from the cursor. No byte at all within firstByteTimeoutMs:
 * a proxy buffers streamed responses, so this tier is unusable. Bytes, then silence for
 * stallTimeoutMs (the bridge sends a keep-alive comment when idle): a dead connection.
 */
export async function sseAttempt(hub: Hub, session: Session): Promise<Outcome> {
  const { controller, release } = linked(session);
  const { firstByteTimeoutMs, stallTimeoutMs } = hub.settings;
  let timedOut: 'first' | 'stall' | undefined;
  let gotBytes = false;
  const watchdog = new Watchdog(() => {
    timedOut = gotBytes ? 'stall' : 'first';
    controller.abort();
  }, firstByteTimeoutMs);
  try {
    const url = hub.url(`/${encodeURIComponent(session.request.chatId)}/stream`, query(session));
    const response = await request(hub, session, url, { headers: session.request.headers }, controller.signal);
    if (response.status === 204) return 'no-active';
    if (!response.ok) throw await httpError(response, true);
    if (response.body == null) throw new InvalidResponse('the stream has no body');
    const generation = response.headers.get(GENERATION_HEADER);
    if (generation) session.generationId = generation;
    session.confirm();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      gotBytes = true;
      watchdog.kick(stallTimeoutMs);
      for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
        if (event.data === undefined) continue;
        if (event.data === '[DONE]') return 'done';
        let chunk: UIMessageChunk;
        try {
          chunk = JSON.parse(event.data) as UIMessageChunk;
        } catch {
          throw new InvalidResponse('a stream event is not JSON');
        }
        session.deliver(Number(event.id), chunk);
      }
    }
    throw new RetryableError('the stream ended before its end marker');
  } catch (error) {
    if (session.stopped) throw abortError();
    if (timedOut === 'first') {
      throw new TierUnusable('sse', `no byte of the stream within ${firstByteTimeoutMs} ms: it is buffered on the way`);
    }
    if (timedOut === 'stall') throw new RetryableError(`the stream stalled (${stallTimeoutMs} ms without a byte)`);
    if (error instanceof RetryableError || error instanceof ServerError) throw error;
    throw new RetryableError(`the stream broke: ${(error as Error)?.message ?? String(error)}`);
  } finally {
    watchdog.stop();
    release();
  }
}

/** Long-polls GET {api}/{id}/poll from the cursor until the generation is done. */
export async function pollAttempt(hub: Hub, session: Session): Promise<Outcome> {
  const { pollWaitSeconds, stallTimeoutMs } = hub.settings;
  for (;;) {
    const { controller, release } = linked(session);
    const timer = setTimeout(() => controller.abort(), pollWaitSeconds * 1000 + stallTimeoutMs);
    let page: unknown;
    try {
      const url = hub.url(`/${encodeURIComponent(session.request.chatId)}/poll`, {
        ...query(session),
        wait: pollWaitSeconds,
      });
      const response = await request(hub, session, url, { headers: session.request.headers }, controller.signal);
      if (!response.ok) throw await httpError(response, true);
      page = await response.json().catch(() => {
        throw session.stopped ? abortError() : new InvalidResponse('a poll answer is not JSON');
      });
    } catch (error) {
      if (session.stopped) throw abortError();
      if (controller.signal.aborted && !(error instanceof ServerError)) {
        throw new RetryableError('a poll got no answer in time');
      }
      throw error;
    } finally {
      clearTimeout(timer);
      release();
    }
    if (!isPollPage(page)) throw new InvalidResponse('a poll answer is not a page');
    if (page.generationId == null) return 'no-active';
    session.applyPage(page);
    if (page.done) return 'done';
  }
}
