'use client';

import { useEffect, useState } from 'react';

type Props = {
  /** What Copy puts on the clipboard: the message's text. */
  text: string;
  /** Shown when given: only while the chat is idle (a running answer is not rewritten). */
  onEdit?: () => void;
  onRegenerate?: () => void;
};

/** Copy, edit and resend, regenerate: the row under a message (as in vercel/chatbot). */
export function MessageActions({ text, onEdit, onRegenerate }: Props) {
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    if (!copied) return;
    const timer = setTimeout(() => setCopied(false), 1500);
    return () => clearTimeout(timer);
  }, [copied]);

  return (
    <div className="message-actions" data-testid="message-actions">
      <button
        type="button"
        className="action-button"
        data-testid="copy-message"
        title="Copy the text"
        onClick={() => void navigator.clipboard.writeText(text).then(() => setCopied(true))}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
      {onEdit ? (
        <button
          type="button"
          className="action-button"
          data-testid="edit-message"
          title="Edit this message and send it again: the answers after it are replaced"
          onClick={onEdit}
        >
          Edit
        </button>
      ) : null}
      {onRegenerate ? (
        <button
          type="button"
          className="action-button"
          data-testid="regenerate-message"
          title="Answer the last message again"
          onClick={onRegenerate}
        >
          Regenerate
        </button>
      ) : null}
    </div>
  );
}
