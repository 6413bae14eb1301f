import type { BackoffOptions } from './backoff.js';

/** How the transport talks to the bridge, best first. */
export type Tier = 'websocket' | 'sse' | 'poll';

export const TIER_ORDER: readonly Tier[] = ['websocket', 'sse', 'poll'];

type Resolvable<T> = T | (() => T | PromiseLike<T>);

export interface ReconnectInfo {
  tier: Tier;
  /** Failed attempts in a row since the answer last made progress (0 = first retry). */
  attempt: number;
  delayMs: number;
  /** The offset of the last chunk held: the reconnect asks for what follows it. */
  cursor: number;
  generationId: string | undefined;
  reason: string;
}

export interface ResilientChatTransportOptions {
  /** The bridge's chat endpoint (default `/api/chat`); the other URLs derive from it. */
  api?: string;
  /** WebSocket URL (default: `api` with ws:// or wss://, resolved against the page). */
  wsUrl?: string;
  /** Tiers to use, best first (default all three: websocket, sse, poll). */
  tiers?: Tier[];
  /** Bearer token: `Authorization` on HTTP, `?token=` on the WebSocket handshake
   * (browsers cannot set handshake headers). */
  token?: Resolvable<string | undefined>;
  /** Headers for every HTTP request (and inside WebSocket frames). */
  headers?: Resolvable<Record<string, string> | Headers>;
  /** Extra body keys, as in `DefaultChatTransport`. */
  body?: Resolvable<object>;
  credentials?: RequestCredentials;
  fetch?: typeof fetch;
  webSocket?: typeof WebSocket;
  /**
   * A streamed response that sends no byte for this long is taken as buffered by a proxy
   * and the transport moves on to the next tier (default 20000 ms). Keep it above the
   * bridge's BRIDGE_HEARTBEAT_SECONDS and the time a provider takes to accept a call.
   */
  firstByteTimeoutMs?: number;
  /**
   * Once bytes flowed, this long without any (chunk, keep-alive comment or keep-alive
   * frame) means the connection is dead: reconnect (default 35000 ms; above both the SSE
   * heartbeat and BRIDGE_WS_PING_SECONDS).
   */
  stallTimeoutMs?: number;
  /** `wait` of each long-poll, seconds (default 25; the bridge caps it). */
  pollWaitSeconds?: number;
  backoff?: BackoffOptions;
  /**
   * After a downgrade, new requests try the best tier again after this long (default
   * 300000 ms; 0: never), so a network that recovered gets the better tier back.
   */
  retryUpgradeAfterMs?: number;
  /**
   * Whether `chat.stop()` also stops the generation on the server (default true):
   * POST {api}/{id}/stop, and an `abort` frame on the WebSocket tier.
   */
  stopOnAbort?: boolean;
  onTierChange?: (tier: Tier, previous: Tier, reason: string) => void;
  onReconnect?: (info: ReconnectInfo) => void;
}

export interface Settings {
  api: string;
  wsUrl: string | undefined;
  tiers: Tier[];
  firstByteTimeoutMs: number;
  stallTimeoutMs: number;
  pollWaitSeconds: number;
  retryUpgradeAfterMs: number;
  stopOnAbort: boolean;
}

export function settingsOf(options: ResilientChatTransportOptions): Settings {
  const tiers = TIER_ORDER.filter(tier => (options.tiers ?? TIER_ORDER).includes(tier));
  if (tiers.length === 0) throw new Error('ResilientChatTransport: `tiers` names no tier');
  return {
    api: options.api ?? '/api/chat',
    wsUrl: options.wsUrl,
    tiers,
    firstByteTimeoutMs: options.firstByteTimeoutMs ?? 20_000,
    stallTimeoutMs: options.stallTimeoutMs ?? 35_000,
    pollWaitSeconds: options.pollWaitSeconds ?? 25,
    retryUpgradeAfterMs: options.retryUpgradeAfterMs ?? 300_000,
    stopOnAbort: options.stopOnAbort ?? true,
  };
}

export async function resolveValue<T>(value: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof value === 'function' ? await (value as () => T | PromiseLike<T>)() : value;
}

export function headersObject(value: Record<string, string> | Headers | undefined): Record<string, string> {
  if (value == null) return {};
  if (typeof Headers !== 'undefined' && value instanceof Headers) {
    return Object.fromEntries(value.entries());
  }
  return { ...(value as Record<string, string>) };
}
