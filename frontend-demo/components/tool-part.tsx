'use client';

import { getToolName, type DynamicToolUIPart, type ToolUIPart } from 'ai';

type Part = ToolUIPart | DynamicToolUIPart;

const STATE_LABELS: Record<Part['state'], string> = {
  'input-streaming': 'Preparing call',
  'input-available': 'Running',
  'approval-requested': 'Needs your approval',
  'approval-responded': 'Answer sent',
  'output-available': 'Done',
  'output-error': 'Failed',
  'output-denied': 'Denied',
};

/** A value as text: one line when short, indented JSON otherwise. */
function show(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  try {
    let line = JSON.stringify(value);
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      line = `{${Object.entries(value)
        .map(([key, item]) => `${JSON.stringify(key)}: ${JSON.stringify(item)}`)
        .join(', ')}}`;
    }
    return line.length <= 90 ? line : JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

type Props = {
  part: Part;
  onApproval: (approvalId: string, approved: boolean) => void;
};

export function ToolPart({ part, onApproval }: Props) {
  const name = getToolName(part);
  const approval = part.approval;
  const label =
    part.state === 'approval-responded' && approval
      ? approval.approved
        ? 'Approved, running'
        : 'Denied'
      : STATE_LABELS[part.state];
  const tone =
    part.state === 'output-error' || part.state === 'output-denied'
      ? 'bad'
      : part.state === 'output-available'
        ? 'good'
        : part.state === 'approval-requested'
          ? 'ask'
          : 'busy';

  return (
    <div
      className={`tool tool-${tone}`}
      data-testid="tool-part"
      data-tool-name={name}
      data-tool-call-id={part.toolCallId}
      data-state={part.state}
    >
      <div className="tool-head">
        <span className="tool-icon" aria-hidden="true">
          ƒ
        </span>
        <code className="tool-name">{part.title ?? name}</code>
        <span className={`tool-state tool-state-${tone}`}>{label}</span>
      </div>

      {part.input !== undefined ? (
        <div className="tool-section">
          <div className="tool-label">Input</div>
          <pre className="tool-json" data-testid="tool-input">
            {show(part.input)}
          </pre>
        </div>
      ) : null}

      {part.state === 'approval-requested' ? (
        <div className="tool-approval" data-testid="tool-approval">
          <span>
            {approval?.requestReason ?? `Allow ${name} to run with this input?`}
          </span>
          <span className="tool-approval-buttons">
            <button
              type="button"
              className="button button-deny"
              data-testid="deny-button"
              onClick={() => onApproval(part.approval.id, false)}
            >
              Deny
            </button>
            <button
              type="button"
              className="button button-approve"
              data-testid="approve-button"
              onClick={() => onApproval(part.approval.id, true)}
            >
              Approve
            </button>
          </span>
        </div>
      ) : null}

      {part.state === 'output-available' ? (
        <div className="tool-section">
          <div className="tool-label">
            Output{part.preliminary ? ' (preliminary)' : ''}
            {approval?.approved ? <span className="tool-note"> · approved</span> : null}
          </div>
          <pre className="tool-json" data-testid="tool-output">
            {show(part.output)}
          </pre>
        </div>
      ) : null}

      {part.state === 'output-error' ? (
        <div className="tool-section">
          <div className="tool-label">Error</div>
          <pre className="tool-json tool-error" data-testid="tool-error">
            {part.errorText}
          </pre>
        </div>
      ) : null}

      {part.state === 'output-denied' ? (
        <div className="tool-section tool-denied" data-testid="tool-denied">
          Not run: the call was denied{approval?.reason ? `: ${approval.reason}` : '.'}
        </div>
      ) : null}
    </div>
  );
}
