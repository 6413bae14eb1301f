import type { BackoffOptions } from './backoff.js';
import {
  headersObject,
  resolveValue,
  settingsOf,
  type ReconnectInfo,
  type ResilientChatTransportOptions,
  type Settings,
  type Tier,
} from './options.js';
import type { Session, SessionRequest } from './session.js';
import { SocketLink } from './socket.js';

/** The `ai` major version the bridge may assume (it degrades the stream otherwise). */
const LEVEL_HEADER = 'x-ai-sdk-level';

export type SteeringMode = 'queue' | 'interrupt';

/** A user message for a running answer: text and file parts only. */
export type SteeringMessage = {
  id: string;
  parts: Array<{ type: 'text'; text: string } | { type: 'file'; mediaType: string; url: string; filename?: string }>;
};

/** `queued: false` when the bridge refused (409: nothing runs; send a normal turn instead). */
export type SteerResult = { queued: boolean; status: number; generationId?: string; error?: string };

/** `path` appended to the URL's path, before any query or fragment. */
function joinPath(url: string, path: string): string {
  const cut = url.search(/[?#]/);
  const base = cut === -1 ? url : url.slice(0, cut);
  const rest = cut === -1 ? '' : url.slice(cut);
  return `${base.replace(/\/$/, '')}${path}${rest}`;
}

/** What the sessions share: the tier, the socket, the settings and the server's URLs. */
export class Hub {
  readonly settings: Settings;
  readonly fetch: typeof fetch;
  readonly credentials: RequestCredentials | undefined;
  readonly backoff: BackoffOptions;
  private tierIndex = 0;
  private downgradedAt = 0;
  private link: Promise<SocketLink> | undefined;
  private readonly sessions = new Set<Session>();
  private closed = false;

  constructor(private readonly options: ResilientChatTransportOptions) {
    this.settings = settingsOf(options);
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.credentials = options.credentials;
    this.backoff = options.backoff ?? {};
  }

  get tier(): Tier {
    return this.settings.tiers[this.tierIndex] ?? 'poll';
  }

  /** Moves past `from` (if it is still the current tier). False: no tier left. */
  downgrade(from: Tier, reason: string): boolean {
    if (this.tier !== from) return true; // another session moved on already
    if (this.tierIndex + 1 >= this.settings.tiers.length) return false;
    this.tierIndex++;
    this.downgradedAt = Date.now();
    if (from === 'websocket') this.dropSocket();
    this.options.onTierChange?.(this.tier, from, reason);
    return true;
  }

  /** A new request tries the best tier again once the downgrade is old enough. */
  maybeUpgrade(): void {
    const after = this.settings.retryUpgradeAfterMs;
    if (this.tierIndex === 0 || after <= 0 || Date.now() - this.downgradedAt < after) return;
    const previous = this.tier;
    this.tierIndex = 0;
    this.options.onTierChange?.(this.tier, previous, `retrying after ${after} ms`);
  }

  async prepare(
    chatId: string,
    headers: Record<string, string> | Headers | undefined,
    body: object | undefined,
    metadata: unknown,
  ): Promise<SessionRequest> {
    const [baseHeaders, baseBody, token] = await Promise.all([
      resolveValue(this.options.headers),
      resolveValue(this.options.body),
      resolveValue(this.options.token),
    ]);
    // This transport needs ai 7, so the bridge may send every v7 chunk (`reset-step`, ...);
    // a client that says nothing gets only what every version accepts.
    const merged: Record<string, string> = {
      [LEVEL_HEADER]: '7',
      ...headersObject(baseHeaders),
      ...headersObject(headers),
    };
    if (token) merged.authorization = `Bearer ${token}`;
    return { chatId, headers: merged, body: { ...baseBody, ...body }, metadata };
  }

  track(session: Session): void {
    if (session.stopped) return;
    if (this.closed) {
      session.end('close', new Error('the transport is closed'));
      return;
    }
    this.sessions.add(session);
  }

  forget(session: Session): void {
    this.sessions.delete(session);
  }

  url(path: string, query: Record<string, string | number | undefined> = {}): string {
    const url = joinPath(this.settings.api, path);
    const params = Object.entries(query)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`)
      .join('&');
    if (!params) return url;
    return `${url}${url.includes('?') ? '&' : '?'}${params}`;
  }

  /** The shared socket, opened on first use and again after it closed. */
  socket(): Promise<SocketLink> {
    if (this.link == null) {
      const opening = this.openSocket();
      this.link = opening;
      opening.catch(() => {
        if (this.link === opening) this.link = undefined;
      });
    }
    return this.link;
  }

  private async openSocket(): Promise<SocketLink> {
    const token = await resolveValue(this.options.token);
    const location = (globalThis as { location?: { href: string } }).location;
    const url = new URL(this.settings.wsUrl ?? this.settings.api, location?.href);
    if (url.protocol === 'http:') url.protocol = 'ws:';
    else if (url.protocol === 'https:') url.protocol = 'wss:';
    if (token) url.searchParams.set('token', token);
    const WebSocketClass = this.options.webSocket ?? globalThis.WebSocket;
    const link = await SocketLink.connect(
      url.toString(),
      WebSocketClass,
      this.settings.firstByteTimeoutMs,
      this.settings.stallTimeoutMs,
      closed => {
        void this.link?.then(current => {
          if (current === closed) this.link = undefined;
        });
      },
    );
    return link;
  }

  private dropSocket(): void {
    const link = this.link;
    this.link = undefined;
    void link?.then(open => open.close()).catch(() => {});
  }

  reportReconnect(info: ReconnectInfo): void {
    this.options.onReconnect?.(info);
  }

  /**
   * Whether a new user message (a plain `submit-message`) provably never reached the bridge:
   * its stored history lacks the message. Any doubt (other triggers, an error) is a no.
   */
  async turnNeverArrived(request: SessionRequest): Promise<boolean> {
    const turn = request.turn;
    const last = turn?.messages.at(-1);
    if (turn?.trigger !== 'submit-message' || turn.messageId !== undefined || last?.role !== 'user') {
      return false;
    }
    try {
      const url = this.url(`/${encodeURIComponent(request.chatId)}/messages`);
      const response = await this.fetch(url, { headers: request.headers, credentials: this.credentials });
      if (!response.ok) return false;
      const stored = ((await response.json()) as { messages?: unknown }).messages;
      return Array.isArray(stored) && !stored.some(message => (message as { id?: unknown })?.id === last.id);
    } catch {
      return false;
    }
  }

  /** Stops the session's generation on the server (POST {api}/{id}/stop): best effort. */
  async stopGeneration(session: Session): Promise<void> {
    if (!this.settings.stopOnAbort) return;
    const generationId = await session.generationIdSoon(this.settings.firstByteTimeoutMs);
    // A resume that never found its generation has nothing of its own to stop.
    if (generationId == null && session.kind === 'resume') return;
    const { chatId, headers } = session.request;
    const url = this.url(`/${encodeURIComponent(chatId)}/stop`, { generation: generationId });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const response = await this.fetch(url, { method: 'POST', headers, credentials: this.credentials });
        if (response.ok || response.status < 500) return;
      } catch {
        // try again: a stop matters
      }
      await new Promise(resolve => setTimeout(resolve, 250 * 2 ** attempt));
    }
  }

  /**
   * Sends a steering message for the chat's running answer (POST {api}/{id}/steer). An HTTP
   * request on every tier: the bridge hands it to the generation wherever it runs.
   */
  async steer(
    chatId: string,
    message: SteeringMessage,
    mode: SteeringMode,
    headers?: Record<string, string> | Headers,
  ): Promise<SteerResult> {
    const request = await this.prepare(chatId, headers, undefined, undefined);
    const response = await this.fetch(this.url(`/${encodeURIComponent(chatId)}/steer`), {
      method: 'POST',
      headers: { ...request.headers, 'content-type': 'application/json' },
      credentials: this.credentials,
      body: JSON.stringify({ message: { ...message, role: 'user' }, mode }),
    });
    const answer = (await response.json().catch(() => null)) as
      | { generationId?: string; error?: { code?: string; message?: string } }
      | null;
    if (!response.ok) {
      return { queued: false, status: response.status, error: answer?.error?.message ?? `HTTP ${response.status}` };
    }
    return { queued: true, status: response.status, generationId: answer?.generationId };
  }

  close(): void {
    this.closed = true;
    for (const session of [...this.sessions]) session.end('close', new Error('the transport is closed'));
    this.dropSocket();
  }
}
