import type { UIMessage } from 'ai';
import { cookies } from 'next/headers';
import { Chat } from './chat';

// README: history
// app/chat/[id]/page.tsx: the history, loaded on the server with the browser's cookie
// (the bridge's anonymous identity, or your session), so the first paint shows it.
export default async function ChatPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const response = await fetch(`${process.env.BRIDGE_URL}/api/chat/${encodeURIComponent(id)}/messages`, {
    headers: { cookie: (await cookies()).toString() },
    cache: 'no-store',
  });
  const stored = response.ok ? ((await response.json()) as { messages: UIMessage[] }) : null;
  return <Chat id={id} initialMessages={stored?.messages ?? []} />;
}
// README: end
