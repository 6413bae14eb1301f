import type { ChatMetadata } from '@/lib/types';

const fmt = (n: number | undefined) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');

/** Model and token usage of an assistant message (from `message.metadata`). */
export function UsageLine({ metadata }: { metadata: ChatMetadata | undefined }) {
  const usage = metadata?.usage;
  if (!usage && !metadata?.model) return null;
  return (
    <div className="usage" data-testid="usage">
      {metadata?.model ? <span className="usage-model">{metadata.model}</span> : null}
      {usage ? (
        <>
          <span title="input tokens">↑ {fmt(usage.inputTokens)} in</span>
          <span title="output tokens">↓ {fmt(usage.outputTokens)} out</span>
          {usage.reasoningTokens ? <span title="reasoning tokens">{fmt(usage.reasoningTokens)} reasoning</span> : null}
          <span title="total tokens" data-testid="usage-total">
            Σ {fmt(usage.totalTokens ?? (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0))}
          </span>
        </>
      ) : null}
    </div>
  );
}
