import { redirect } from 'next/navigation';
import { connection } from 'next/server';
import { newChatId } from '@/lib/ids';
import { TRANSPORT_PARAM, parseTransportChoice } from '@/lib/transport-choice';

type Props = { searchParams: Promise<{ transport?: string | string[] }> };

// `/` starts a new chat: a fresh id for every request (never prerendered). A `?transport=`
// choice goes along.
export default async function Home({ searchParams }: Props) {
  await connection();
  const transport = parseTransportChoice((await searchParams).transport);
  redirect(`/chat/${newChatId()}${transport ? `?${TRANSPORT_PARAM}=${transport}` : ''}`);
}
