'use client';

import type { PendingMessage } from '@/lib/use-session-signals';

const LABELS: Record<PendingMessage['state'], string> = {
  queued: 'queued',
  delivered: 'delivered',
  running: 'running',
  dropped: 'not run',
  'not-delivered': 'not delivered',
};

function detail(item: PendingMessage): string {
  if (item.kind === 'queue') {
    if (item.state === 'queued') return 'runs when this answer ends';
    if (item.state === 'dropped') return `the answer was stopped${item.reason ? ` (${item.reason})` : ''}`;
    return 'answering now';
  }
  if (item.state === 'queued') return 'the model reads it at its next step';
  if (item.state === 'not-delivered') {
    // The bridge starts the next turn with it itself, unless the answer was stopped.
    return item.reason === 'aborted'
      ? 'the answer was stopped'
      : `${item.reason ?? 'not read'}: it is answered as the next message`;
  }
  return '';
}

/** Messages sent while an answer runs, with what became of each (steered or queued). */
export function PendingMessages({
  items,
  onDismiss,
}: {
  items: PendingMessage[];
  onDismiss: (id: string) => void;
}) {
  if (items.length === 0) return null;
  return (
    <ul className="pending" data-testid="pending-messages">
      {items.map((item) => (
        <li
          key={item.id}
          className={`pending-item pending-${item.state}`}
          data-testid="pending-message"
          data-kind={item.kind}
          data-state={item.state}
          data-reason={item.reason}
        >
          <span className="pending-kind">{item.kind === 'steer' ? 'Steer' : 'Next'}</span>
          <span className="pending-text">{item.text}</span>
          <span className="pending-state">
            {LABELS[item.state]}
            {detail(item) ? ` · ${detail(item)}` : ''}
          </span>
          {item.state === 'not-delivered' || item.state === 'dropped' ? (
            <button type="button" className="link-button" onClick={() => onDismiss(item.id)}>
              Dismiss
            </button>
          ) : null}
        </li>
      ))}
    </ul>
  );
}
