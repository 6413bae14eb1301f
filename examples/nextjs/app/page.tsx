import { redirect } from 'next/navigation';

export const dynamic = 'force-dynamic'; // a new id per visit, not one fixed at build time

// A new chat gets its own URL: /chat/<id> (reload it to see the history come back).
export default function Home() {
  redirect(`/chat/${crypto.randomUUID()}`);
}
