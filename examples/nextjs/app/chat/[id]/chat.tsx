'use client';

// README: chat
// app/chat/[id]/chat.tsx
import { useChat } from '@ai-sdk/react';
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses, type UIMessage } from 'ai';
import { useEffect, useState } from 'react';

const transport = new DefaultChatTransport({
  api: '/api/chat',
  headers: { 'x-ai-sdk-level': '7' }, // this app runs ai 7: every v7 chunk is welcome
  // The bridge keeps the history: send only the newest message, and keep `body` fields
  // (e.g. `sendMessage(message, { body: { model } })`).
  prepareSendMessagesRequest: ({ id, messages, trigger, messageId, body }) => ({
    body: { ...body, id, message: messages.at(-1), trigger, messageId },
  }),
});

export function Chat({ id, initialMessages }: { id: string; initialMessages: UIMessage[] }) {
  const { messages, sendMessage, stop, status } = useChat({
    id,
    messages: initialMessages, // loaded on the server (page.tsx)
    resume: true, // replays a generation still running after a reload
    transport,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });
  // A stop button: stop the server, then the local fetch.
  const stopBoth = async () => {
    await fetch(`/api/chat/${id}/stop`, { method: 'POST' });
    stop();
  };
// README: end
  const [input, setInput] = useState('');
  const [hydrated, setHydrated] = useState(false); // tells a test the page is live
  useEffect(() => setHydrated(true), []);
  return (
    <main data-status={status} data-hydrated={hydrated}>
      {messages.map(message => (
        <p key={message.id} data-role={message.role}>
          <b>{message.role}:</b>{' '}
          <span>{message.parts.map(part => (part.type === 'text' ? part.text : '')).join('')}</span>
        </p>
      ))}
      <form
        onSubmit={event => {
          event.preventDefault();
          if (!input.trim()) return;
          void sendMessage({ text: input });
          setInput('');
        }}
      >
        <input value={input} onChange={event => setInput(event.target.value)} placeholder="Say something" />
        <button type="submit" disabled={status !== 'ready' && status !== 'error'}>
          Send
        </button>
        <button type="button" onClick={stopBoth} disabled={status !== 'streaming' && status !== 'submitted'}>
          Stop
        </button>
      </form>
    </main>
  );
}
