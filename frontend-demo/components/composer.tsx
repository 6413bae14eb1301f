'use client';

import { useState, type FormEvent, type KeyboardEvent } from 'react';

type Props = {
  onSend: (text: string) => void;
  /** While an answer runs: send the text into it (a steering message). */
  onSteer: (text: string) => void;
  onStop: () => void;
  canStop: boolean;
  stopping: boolean;
  disabled: boolean;
};

export function Composer({ onSend, onSteer, onStop, canStop, stopping, disabled }: Props) {
  const [text, setText] = useState('');

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    const value = text.trim();
    if (!value) return;
    if (canStop && !stopping) {
      // An answer is running: the text steers it (the model reads it at its next step).
      onSteer(value);
      setText('');
      return;
    }
    if (disabled) return;
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
      {canStop && text.trim() !== '' && !stopping ? (
        <button
          type="submit"
          className="button button-primary"
          data-testid="steer-button"
          title="Send this into the running answer: the model reads it at its next step"
        >
          Steer
        </button>
      ) : null}
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
