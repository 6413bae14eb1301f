import type { Metadata } from 'next';
import { notFound } from 'next/navigation';
import { Chat } from '@/components/chat';
import { Sidebar } from '@/components/sidebar';
import { loadChat, loadChats, loadModels, signedInUser } from '@/lib/bridge';
import { CHAT_ID_PATTERN } from '@/lib/ids';
import { parseTransportChoice } from '@/lib/transport-choice';

type Props = {
  params: Promise<{ id: string }>;
  searchParams: Promise<{ transport?: string | string[] }>;
};

export const metadata: Metadata = { title: 'Chat · aisdk-bridge demo' };

// The stored history is rendered on the server, then the client resumes whatever the bridge
// is still generating for this chat (useChat `resume: true`).
export default async function ChatPage({ params, searchParams }: Props) {
  const { id } = await params;
  const { transport } = await searchParams;
  if (!CHAT_ID_PATTERN.test(id)) notFound();

  const [chat, chats, models, user] = await Promise.all([
    loadChat(id),
    loadChats(),
    loadModels(),
    signedInUser(),
  ]);
  const title = chats.data.find((c) => c.id === id)?.title ?? null;

  return (
    <div className="app">
      <Sidebar initialChats={chats.data} activeId={id} user={user} />
      <Chat
        key={id}
        id={id}
        title={title}
        initialMessages={chat.data.messages}
        models={models.data}
        loadError={chat.error}
        transportFromUrl={parseTransportChoice(transport)}
      />
    </div>
  );
}
