'use client';

import { isToolUIPart, type SourceDocumentUIPart, type SourceUrlUIPart } from 'ai';
import { memo } from 'react';
import type { ChatMessage } from '@/lib/types';
import { Markdown } from './markdown';
import { Reasoning } from './reasoning';
import { Sources } from './sources';
import { ToolPart } from './tool-part';
import { UsageLine } from './usage-line';

type Props = {
  message: ChatMessage;
  streaming: boolean;
  onApproval: (approvalId: string, approved: boolean) => void;
};

export const Message = memo(function Message({ message, streaming, onApproval }: Props) {
  if (message.role === 'user') {
    return (
      <div className="message message-user" data-testid="message" data-role="user" data-message-id={message.id}>
        <div className="bubble">
          {message.parts.map((part, index) =>
            part.type === 'text' ? (
              <p key={index} className="user-text" data-testid="message-text">
                {part.text}
              </p>
            ) : part.type === 'file' ? (
              <a key={index} className="file-chip" href={part.url} target="_blank" rel="noopener noreferrer">
                {part.filename ?? part.mediaType}
              </a>
            ) : null,
          )}
        </div>
      </div>
    );
  }

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
          if (isToolUIPart(part)) {
            return <ToolPart key={part.toolCallId} part={part} onApproval={onApproval} />;
          }
          if (part.type === 'file') {
            return part.mediaType.startsWith('image/') ? (
              // eslint-disable-next-line @next/next/no-img-element
              <img key={index} className="file-image" src={part.url} alt={part.filename ?? 'image'} />
            ) : (
              <a key={index} className="file-chip" href={part.url} target="_blank" rel="noopener noreferrer">
                {part.filename ?? part.mediaType}
              </a>
            );
          }
          if ((part as { type: string }).type === 'steering-message') {
            // A user message delivered into the running answer, where the model read it.
            const steering = part as unknown as { parts: Array<{ type: string; text?: string }> };
            return (
              <div key={index} className="steering-message" data-testid="steering-message">
                {steering.parts.map((item) => (item.type === 'text' ? item.text : '')).join(' ')}
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
      </div>
    </div>
  );
});
