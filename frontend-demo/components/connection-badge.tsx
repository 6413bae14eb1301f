import type { Tier } from '@/lib/use-chat-transport';
import type { ConnectionPhase } from '@/lib/use-connection';

const LABELS: Record<ConnectionPhase, string> = {
  idle: 'Connected',
  sending: 'Sending',
  streaming: 'Streaming',
  reconnecting: 'Reconnecting',
  resumed: 'Resumed',
  stopping: 'Stopping',
  stopped: 'Stopped',
  offline: 'Offline',
  error: 'Error',
};

const HINTS: Record<ConnectionPhase, string> = {
  idle: 'Nothing in flight',
  sending: 'Waiting for the first chunk',
  streaming: 'Receiving the answer live',
  reconnecting: 'The connection dropped; resuming the answer from the bridge',
  resumed: 'Reconnected: the bridge replayed the answer and streams the rest live',
  stopping: 'Asking the bridge to stop the generation',
  stopped: 'The generation was stopped',
  offline: 'The browser is offline; resuming when the network is back',
  error: 'The last request failed',
};

export const TIER_LABELS: Record<Tier, string> = {
  websocket: 'WebSocket',
  sse: 'SSE',
  poll: 'Long-polling',
};

/** The badge text: the phase, and the live tier when the transport picks one. */
export function badgeLabel(phase: ConnectionPhase, tier: Tier | null): string {
  return tier ? `${LABELS[phase]} · ${TIER_LABELS[tier]}` : LABELS[phase];
}

type Props = {
  phase: ConnectionPhase;
  /** The tier of the resilient transport (null for the stock transports). */
  tier: Tier | null;
};

export function ConnectionBadge({ phase, tier }: Props) {
  return (
    <span
      className={`badge badge-${phase}`}
      data-testid="connection-state"
      data-state={phase}
      data-tier={tier ?? undefined}
      title={tier ? `${HINTS[phase]} (transport: ${TIER_LABELS[tier]})` : HINTS[phase]}
      role="status"
      aria-live="polite"
    >
      <span className="badge-dot" aria-hidden="true" />
      <span>
        {LABELS[phase]}
        {tier ? <span className="badge-tier"> · {TIER_LABELS[tier]}</span> : null}
      </span>
    </span>
  );
}
