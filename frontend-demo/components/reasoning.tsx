'use client';

/** Model reasoning, collapsed once the model has finished thinking. */
export function Reasoning({ text, streaming }: { text: string; streaming: boolean }) {
  if (!text && !streaming) return null;
  return (
    <details className="reasoning" data-testid="reasoning" open={streaming}>
      <summary>
        <span className="reasoning-chevron" aria-hidden="true">
          ›
        </span>
        {streaming ? 'Thinking…' : 'Reasoning'}
      </summary>
      <div className="reasoning-text">{text}</div>
    </details>
  );
}
