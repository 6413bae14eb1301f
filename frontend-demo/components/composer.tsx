'use client';

import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { ACCEPTED_FILES } from '@/lib/attachments';

type Props = {
  onSend: (text: string, files: File[]) => void;
  /** While an answer runs: send the text into it (a steering message). */
  onSteer: (text: string) => void;
  /** While an answer runs: send the text as the next turn (the bridge's busy policy `queue`). */
  onQueue: (text: string) => void;
  onStop: () => void;
  canStop: boolean;
  stopping: boolean;
  disabled: boolean;
};

export function Composer({ onSend, onSteer, onQueue, onStop, canStop, stopping, disabled }: Props) {
  const [text, setText] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const picker = useRef<HTMLInputElement>(null);
  const running = canStop && !stopping;

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    const value = text.trim();
    if (running) {
      // An answer is running: the text steers it (the model reads it at its next step).
      if (!value) return;
      onSteer(value);
      setText('');
      return;
    }
    if (disabled || (!value && files.length === 0)) return;
    onSend(value, files);
    setText('');
    setFiles([]);
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
  };

  return (
    <form className="composer" onSubmit={submit} data-testid="composer">
      {files.length > 0 ? (
        <div className="composer-files" data-testid="composer-files">
          {files.map((file, index) => (
            <span key={`${file.name}-${index}`} className="file-chip" data-testid="composer-file">
              {file.name}
              <button
                type="button"
                className="file-chip-remove"
                aria-label={`Remove ${file.name}`}
                onClick={() => setFiles((list) => list.filter((_, i) => i !== index))}
              >
                ×
              </button>
            </span>
          ))}
        </div>
      ) : null}
      <input
        ref={picker}
        type="file"
        multiple
        hidden
        accept={ACCEPTED_FILES}
        data-testid="attach-input"
        onChange={(event) => {
          const picked = Array.from(event.target.files ?? []);
          setFiles((list) => [...list, ...picked]);
          event.target.value = ''; // the same file can be picked again
        }}
      />
      <button
        type="button"
        className="button button-ghost attach-button"
        data-testid="attach-button"
        title="Attach images or PDFs"
        aria-label="Attach files"
        disabled={running}
        onClick={() => picker.current?.click()}
      >
        📎
      </button>
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
      {running && text.trim() !== '' ? (
        <>
          <button
            type="submit"
            className="button button-primary"
            data-testid="steer-button"
            title="Send this into the running answer: the model reads it at its next step"
          >
            Steer
          </button>
          <button
            type="button"
            className="button button-ghost"
            data-testid="queue-button"
            title="Send this as the next message: it runs when this answer ends"
            onClick={() => {
              onQueue(text.trim());
              setText('');
            }}
          >
            Queue
          </button>
        </>
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
          disabled={disabled || (text.trim() === '' && files.length === 0)}
        >
          Send
        </button>
      )}
    </form>
  );
}
