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

export function ConnectionBadge({ phase }: { phase: ConnectionPhase }) {
  return (
    <span
      className={`badge badge-${phase}`}
      data-testid="connection-state"
      data-state={phase}
      title={HINTS[phase]}
      role="status"
      aria-live="polite"
    >
      <span className="badge-dot" aria-hidden="true" />
      {LABELS[phase]}
    </span>
  );
}
