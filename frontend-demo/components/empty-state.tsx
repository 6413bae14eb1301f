const SUGGESTIONS = [
  { label: 'Say hello', text: 'Hello! What can you do?' },
  { label: 'A long answer', text: 'Write a long answer about resumable streams.' },
  { label: 'A tool that needs approval', text: 'Please delete notes.txt' },
];

export function EmptyState({ onPick }: { onPick: (text: string) => void }) {
  return (
    <div className="empty" data-testid="empty-state">
      <div className="empty-mark" aria-hidden="true">
        ◆
      </div>
      <h2>Durable chat, resumable anywhere</h2>
      <p>
        Every chunk of an answer is logged by the bridge. Reload mid-answer, open this chat in a
        second tab, or drop the connection: the answer picks up where it was.
      </p>
      <div className="suggestions">
        {SUGGESTIONS.map((s) => (
          <button key={s.label} type="button" className="suggestion" onClick={() => onPick(s.text)}>
            <strong>{s.label}</strong>
            <span>{s.text}</span>
          </button>
        ))}
      </div>
    </div>
  );
}
