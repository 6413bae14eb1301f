import type { UIMessage, UIMessageChunk } from 'ai';
import { backoffDelay, pause } from './backoff.js';
import { InvalidResponse, RetryableError, ServerError, TierUnusable, abortError } from './errors.js';
import type { Hub } from './hub.js';
import type { Tier } from './options.js';
import { pollAttempt, sseAttempt, startTurn, type PollPage } from './http.js';
import { socketAttempt } from './socket.js';

/** How an attempt ended when it did not throw. */
export type Outcome = 'done' | 'no-active';

export type EndReason = 'abort' | 'cancel' | 'close';

/** What one `sendMessages` / `reconnectToStream` call asks for. */
export interface SessionRequest {
  chatId: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  metadata: unknown;
  turn?: {
    trigger: 'submit-message' | 'regenerate-message';
    messageId: string | undefined;
    messages: UIMessage[];
  };
}

const NOT_STARTED =
  'The connection was lost before the server confirmed the message, and the chat has no ' +
  'answer in progress: reload the chat to see whether it arrived.';
const MAX_INVALID = 3;
const MAX_SILENT_SOCKET_FAILURES = 3;
const MAX_RESENDS = 3;

/**
 * One answer being read: what the Chat sees as one stream, however many connections and
 * tiers it takes. Chunks are identified by their offset in the generation's log, so a
 * reconnect asks for what follows the last one held, and anything already held is dropped:
 * no duplicate, no gap.
 */
export class Session {
  generationId: string | undefined;
  /** Offset of the last chunk handed to the Chat (-1: none). */
  cursor = -1;
  /** A continuation's log starts (after `start`) with chunks rebuilding the message this
   * client sent: offsets 1..preludeEnd are skipped. */
  preludeEnd = 0;
  /** A send may have reached the server: from now on it is only ever resumed, never
   * repeated (repeating could run tools twice). */
  sent = false;
  stopped = false;
  startInFlight: Promise<unknown> | undefined;
  readonly stream: ReadableStream<UIMessageChunk>;

  private controller!: ReadableStreamDefaultController<UIMessageChunk>;
  private confirmed = false;
  private progress = 0;
  private invalid = 0;
  private readonly ended = new AbortController();
  private readonly hooks = new Set<(reason: EndReason) => void>();
  private resolveOpened!: (stream: ReadableStream<UIMessageChunk> | null) => void;
  private rejectOpened!: (error: unknown) => void;
  private readonly opened: Promise<ReadableStream<UIMessageChunk> | null>;

  constructor(
    readonly hub: Hub,
    readonly kind: 'send' | 'resume',
    readonly request: SessionRequest,
    abortSignal: AbortSignal | undefined,
  ) {
    this.stream = new ReadableStream<UIMessageChunk>({
      start: controller => {
        this.controller = controller;
      },
      cancel: () => this.end('cancel'),
    });
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpened = resolve;
      this.rejectOpened = reject;
    });
    // The caller may never await a failed opening (it had given up): no unhandled rejection.
    this.opened.catch(() => {});
    if (abortSignal?.aborted) this.end('abort');
    abortSignal?.addEventListener('abort', () => this.end('abort'), { once: true });
  }

  /** Resolves with the stream once the server has the request (null: a resume found
   * nothing); rejects on the server's refusal. Connection trouble only delays it. */
  start(): Promise<ReadableStream<UIMessageChunk> | null> {
    if (!this.stopped) void this.run();
    return this.opened;
  }

  get signal(): AbortSignal {
    return this.ended.signal;
  }

  /** The cursor a reconnect sends: past the prelude once `start` is held. */
  resumeCursor(): number {
    return this.cursor < 0 ? -1 : Math.max(this.cursor, this.preludeEnd);
  }

  /** Runs `hook` when the session ends early (stop, cancel, transport closed). */
  onEnd(hook: (reason: EndReason) => void): () => void {
    this.hooks.add(hook);
    return () => this.hooks.delete(hook);
  }

  confirm(): void {
    this.progress++;
    if (this.confirmed) return;
    this.confirmed = true;
    this.resolveOpened(this.stream);
  }

  deliver(offset: number, chunk: UIMessageChunk): void {
    if (this.stopped) return;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new InvalidResponse(`a chunk came without a valid offset (${String(offset)})`);
    }
    if (offset <= this.cursor || (offset > 0 && offset <= this.preludeEnd)) return;
    this.confirm();
    try {
      this.controller.enqueue(chunk);
    } catch {
      return; // the Chat stopped reading
    }
    this.cursor = offset;
    this.invalid = 0;
  }

  applyPage(page: PollPage): void {
    if (page.generationId != null) this.generationId = page.generationId;
    this.confirm();
    for (const item of page.chunks) this.deliver(item.offset, item.chunk);
    if (!this.stopped) this.cursor = Math.max(this.cursor, page.cursor);
  }

  /** The generation id, waiting (bounded) for a start request still in flight. */
  async generationIdSoon(ms: number): Promise<string | undefined> {
    if (this.generationId != null || this.startInFlight == null) return this.generationId;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.startInFlight.catch(() => {}),
      new Promise(resolve => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
    return this.generationId;
  }

  /** Ends the session early: the Chat's stop (`abort`), its cancel, or `close()`. */
  end(reason: EndReason, error: Error = abortError()): void {
    if (this.stopped) return;
    const started = this.kind === 'send' ? this.sent : this.confirmed;
    this.stopped = true;
    this.ended.abort(error);
    for (const hook of [...this.hooks]) hook(reason);
    this.hooks.clear();
    this.rejectOpened(error);
    if (reason === 'close') this.safely(() => this.controller.error(error));
    else this.safely(() => this.controller.close());
    this.hub.forget(this);
    if (reason === 'abort' && started) void this.hub.stopGeneration(this);
  }

  private finish(): void {
    this.stopped = true;
    this.safely(() => this.controller.close());
    this.hub.forget(this);
  }

  private fail(error: unknown): void {
    this.stopped = true;
    this.ended.abort(error);
    this.rejectOpened(error);
    this.safely(() => this.controller.error(error));
    this.hub.forget(this);
  }

  private safely(action: () => void): void {
    try {
      action();
    } catch {
      // the stream is already closed or errored
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    let silentSocketFailures = 0;
    let resends = 0;
    for (;;) {
      if (this.stopped) return;
      const tier = this.hub.tier;
      const progressBefore = this.progress;
      try {
        const outcome = await this.attempt(tier);
        if (this.stopped) return;
        if (outcome === 'done') {
          this.finish();
          return;
        }
        if (this.kind === 'resume' && !this.confirmed) {
          this.stopped = true;
          this.resolveOpened(null);
          this.hub.forget(this);
          return;
        }
        // A send whose fate is unknown and that left no trace: it is sent again only when
        // the stored history proves it never arrived (the bridge stores the new message
        // in the same step that starts the turn).
        if (!this.confirmed && resends < MAX_RESENDS && (await this.hub.turnNeverArrived(this.request))) {
          resends++;
          this.sent = false;
          continue;
        }
        throw new ServerError(NOT_STARTED);
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof TierUnusable && this.hub.downgrade(error.tier, error.message)) {
          continue;
        }
        if (!(error instanceof RetryableError) && !(error instanceof TierUnusable)) {
          this.fail(error);
          return;
        }
        if (this.progress !== progressBefore) failures = silentSocketFailures = 0;
        // Some proxies accept the upgrade and then drop the socket before anything passes:
        // a socket that keeps failing that way is as unusable as a refused upgrade.
        if (
          tier === 'websocket' &&
          this.progress === progressBefore &&
          ++silentSocketFailures >= MAX_SILENT_SOCKET_FAILURES &&
          this.hub.downgrade('websocket', `the socket failed ${silentSocketFailures} times before any frame: ${error.message}`)
        ) {
          continue;
        }
        // A response that cannot be read at the same place again and again is the server's
        // fault, not the network's: give up rather than loop.
        if (error instanceof InvalidResponse && ++this.invalid > MAX_INVALID) {
          this.fail(new ServerError(`the server keeps sending an unreadable response: ${error.message}`));
          return;
        }
        const delayMs = backoffDelay(failures, this.hub.backoff);
        this.hub.reportReconnect({
          tier,
          attempt: failures,
          delayMs: Math.round(delayMs),
          cursor: this.resumeCursor(),
          generationId: this.generationId,
          reason: error.message,
        });
        failures++;
        try {
          await pause(delayMs, this.ended.signal);
        } catch {
          return;
        }
      }
    }
  }

  private async attempt(tier: Tier): Promise<Outcome> {
    if (tier === 'websocket') return socketAttempt(this.hub, this);
    if (this.kind === 'send' && !this.sent) {
      this.sent = true;
      if (await startTurn(this.hub, this)) return 'done';
    }
    return tier === 'sse' ? sseAttempt(this.hub, this) : pollAttempt(this.hub, this);
  }
}
