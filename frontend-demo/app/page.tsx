import { redirect } from 'next/navigation';
import { connection } from 'next/server';
import { newChatId } from '@/lib/ids';

// `/` starts a new chat: a fresh id for every request (never prerendered).
export default async function Home() {
  await connection();
  redirect(`/chat/${newChatId()}`);
}
