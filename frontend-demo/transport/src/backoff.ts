export interface BackoffOptions {
  /** First pause after a failure (default 250 ms). */
  initialMs?: number;
  /** Longest pause (default 8000 ms): retries never stop, they only slow down. */
  maxMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
}

export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 250;
  const ceiling = Math.min(options.maxMs ?? 8000, initial * (options.factor ?? 2) ** attempt);
  // Jitter spreads the reconnects of many clients after a server restart.
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/**
 * Waits `ms`, or less when the browser reports it is back online (no point in waiting
 * longer then). Rejects when `signal` aborts.
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const target = globalThis as { addEventListener?: typeof addEventListener; removeEventListener?: typeof removeEventListener };
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      target.removeEventListener?.('online', onOnline);
    };
    const onOnline = () => {
      done();
      resolve();
    };
    const onAbort = () => {
      done();
      reject(signal.reason);
    };
    const timer = setTimeout(onOnline, ms);
    signal.addEventListener('abort', onAbort, { once: true });
    target.addEventListener?.('online', onOnline);
  });
}

/** Fires `onFire` when not kicked for `ms`; `kick(ms)` re-arms it (with a new period). */
export class Watchdog {
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly onFire: () => void,
    ms: number,
  ) {
    this.kick(ms);
  }

  kick(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.onFire, ms);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
