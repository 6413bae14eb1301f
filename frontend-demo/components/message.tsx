'use client';

import { isToolUIPart, type FileUIPart, type SourceDocumentUIPart, type SourceUrlUIPart } from 'ai';
import { memo, useState } from 'react';
import { messageText } from '@/lib/attachments';
import type { ChatMessage, SteeringOutcomes } from '@/lib/types';
import { Markdown } from './markdown';
import { MessageActions } from './message-actions';
import { isProviderToolPart, ProviderToolCard } from './provider-tool-card';
import { Reasoning } from './reasoning';
import { Sources } from './sources';
import { ToolPart } from './tool-part';
import { UsageLine } from './usage-line';

type Props = {
  message: ChatMessage;
  streaming: boolean;
  onApproval: (approvalId: string, approved: boolean) => void;
  /** Null while an answer runs: the actions that rewrite the chat are hidden then. */
  onEdit: ((messageId: string, text: string, files: FileUIPart[]) => void) | null;
  /** Given for the last assistant message of an idle chat only. */
  onRegenerate: ((messageId: string) => void) | null;
  /** What became of the steering messages of this answer (by id). */
  steering?: SteeringOutcomes;
};

function Attachment({ part }: { part: FileUIPart }) {
  return part.mediaType.startsWith('image/') ? (
    // eslint-disable-next-line @next/next/no-img-element
    <img className="file-image" data-testid="attachment" src={part.url} alt={part.filename ?? 'image'} />
  ) : (
    <a className="file-chip" data-testid="attachment" href={part.url} target="_blank" rel="noopener noreferrer">
      {part.filename ?? part.mediaType}
    </a>
  );
}

function UserMessage({ message, onEdit }: Pick<Props, 'message' | 'onEdit'>) {
  const [draft, setDraft] = useState<string | null>(null); // null: not editing
  const files = message.parts.filter((part): part is FileUIPart => part.type === 'file');
  const save = () => {
    const text = draft?.trim();
    if (!text || !onEdit) return;
    setDraft(null);
    onEdit(message.id, text, files); // replaces this message and what came after it
  };
  return (
    <div className="message message-user" data-testid="message" data-role="user" data-message-id={message.id}>
      {draft !== null ? (
        <form
          className="edit-form"
          onSubmit={(event) => {
            event.preventDefault();
            save();
          }}
        >
          <textarea
            className="composer-input edit-input"
            data-testid="edit-input"
            value={draft}
            aria-label="Edit the message"
            onChange={(event) => setDraft(event.target.value)}
          />
          <div className="edit-buttons">
            <button type="button" className="button button-ghost" onClick={() => setDraft(null)}>
              Cancel
            </button>
            <button type="submit" className="button button-primary" data-testid="edit-save" disabled={!onEdit}>
              Send
            </button>
          </div>
        </form>
      ) : (
        <div className="bubble">
          {message.parts.map((part, index) =>
            part.type === 'text' ? (
              <p key={index} className="user-text" data-testid="message-text">
                {part.text}
              </p>
            ) : part.type === 'file' ? (
              <Attachment key={index} part={part} />
            ) : null,
          )}
        </div>
      )}
      {draft === null ? (
        <MessageActions
          text={messageText(message.parts)}
          onEdit={onEdit ? () => setDraft(messageText(message.parts)) : undefined}
        />
      ) : null}
    </div>
  );
}

export const Message = memo(function Message({
  message,
  streaming,
  onApproval,
  onEdit,
  onRegenerate,
  steering,
}: Props) {
  if (message.role === 'user') return <UserMessage message={message} onEdit={onEdit} />;

  const sources = message.parts.filter(
    (part): part is SourceUrlUIPart | SourceDocumentUIPart =>
      part.type === 'source-url' || part.type === 'source-document',
  );
  const lastTextIndex = message.parts.findLastIndex((part) => part.type === 'text');

  return (
    <div
      className={`message message-assistant${streaming ? ' is-streaming' : ''}`}
      data-testid="message"
      data-role={message.role}
      data-message-id={message.id}
      data-streaming={streaming ? 'true' : 'false'}
    >
      <div className="avatar" aria-hidden="true">
        ◆
      </div>
      <div className="assistant-body">
        {message.parts.map((part, index) => {
          if (part.type === 'text') {
            return (
              <div
                key={index}
                className={`prose${streaming && index === lastTextIndex ? ' with-caret' : ''}`}
                data-testid="message-text"
              >
                <Markdown text={part.text} />
              </div>
            );
          }
          if (part.type === 'reasoning') {
            return <Reasoning key={index} text={part.text} streaming={part.state === 'streaming'} />;
          }
          if (isProviderToolPart(part)) {
            return <ProviderToolCard key={part.toolCallId} part={part} sources={sources} />;
          }
          if (isToolUIPart(part)) {
            return <ToolPart key={part.toolCallId} part={part} onApproval={onApproval} />;
          }
          if (part.type === 'file') return <Attachment key={index} part={part} />;
          if ((part as { type: string }).type === 'steering-message') {
            // A user message delivered into the running answer, where the model read it.
            const steered = part as unknown as { id?: string; parts: Array<{ type: string; text?: string }> };
            const outcome = steered.id ? steering?.[steered.id] : undefined;
            return (
              <div key={index} className="steering-message" data-testid="steering-message">
                {steered.parts.map((item) => (item.type === 'text' ? item.text : '')).join(' ')}
                {outcome?.type === 'delivered' ? (
                  <span className="steering-outcome" data-testid="steering-outcome" data-outcome="delivered">
                    delivered at step {outcome.stepNumber + 1}
                  </span>
                ) : null}
              </div>
            );
          }
          if (part.type === 'step-start' && index > 0) {
            return <hr key={index} className="step-divider" />;
          }
          return null;
        })}
        {sources.length > 0 ? <Sources sources={sources} /> : null}
        {!streaming ? <UsageLine metadata={message.metadata} /> : null}
        {!streaming ? (
          <MessageActions
            text={messageText(message.parts)}
            onRegenerate={onRegenerate ? () => onRegenerate(message.id) : undefined}
          />
        ) : null}
      </div>
    </div>
  );
});
