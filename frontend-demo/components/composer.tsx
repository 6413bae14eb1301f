'use client';

import { useState, type FormEvent, type KeyboardEvent } from 'react';

type Props = {
  onSend: (text: string) => void;
  onStop: () => void;
  canStop: boolean;
  stopping: boolean;
  disabled: boolean;
};

export function Composer({ onSend, onStop, canStop, stopping, disabled }: Props) {
  const [text, setText] = useState('');

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    const value = text.trim();
    if (!value || disabled) return;
    onSend(value);
    setText('');
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  };

  return (
    <form className="composer" onSubmit={submit} data-testid="composer">
      <textarea
        data-testid="composer-input"
        className="composer-input"
        placeholder="Ask something… (try “write a long answer” or “delete notes.txt”)"
        value={text}
        rows={1}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={onKeyDown}
        aria-label="Message"
      />
      {canStop ? (
        <button
          type="button"
          className="button button-stop"
          data-testid="stop-button"
          onClick={onStop}
          disabled={stopping}
        >
          <span className="stop-square" aria-hidden="true" />
          {stopping ? 'Stopping…' : 'Stop'}
        </button>
      ) : (
        <button
          type="submit"
          className="button button-primary"
          data-testid="send-button"
          disabled={disabled || text.trim() === ''}
        >
          Send
        </button>
      )}
    </form>
  );
}
