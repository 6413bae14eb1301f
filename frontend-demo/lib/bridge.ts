// Server-side access to the bridge, used by server components to render the first paint.
// The browser never calls these: it goes through the `/api/*` rewrite of next.config.ts.
import { cookies } from 'next/headers';
import { SESSION_COOKIE, sessionSecret, sessionUser } from './session';
import type { ChatSummary, ModelList, StoredChat } from './types';

const TIMEOUT_MS = 5000;

/** The bridge the `/api/*` rewrite points at (fixed when the app is built). */
export function bridgeUrl(): string {
  return process.env.BRIDGE_URL_BUILT ?? 'http://127.0.0.1:8000';
}

export type Loaded<T> = { data: T; error: string | null };

async function getJson<T>(path: string, fallback: T): Promise<Loaded<T>> {
  const url = `${bridgeUrl()}${path}`;
  try {
    // The browser's cookie (its anonymous identity, or a session): the chat list and the
    // history are that browser's, on the first paint as after it.
    const jar = await cookies();
    const cookie = jar.toString();
    // With auth on, the session's JWT (what proxy.ts adds to the browser's /api/* calls).
    const token = sessionSecret() ? jar.get(SESSION_COOKIE)?.value : undefined;
    const response = await fetch(url, {
      cache: 'no-store',
      headers: {
        accept: 'application/json',
        ...(cookie ? { cookie } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!response.ok) {
      return { data: fallback, error: `${path}: HTTP ${response.status}` };
    }
    return { data: (await response.json()) as T, error: null };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { data: fallback, error: `bridge unreachable at ${bridgeUrl()} (${reason})` };
  }
}

export function loadChat(id: string): Promise<Loaded<StoredChat>> {
  return getJson<StoredChat>(`/api/chat/${encodeURIComponent(id)}/messages`, {
    chatId: id,
    messages: [],
    activeGenerationId: null,
  });
}

export async function loadChats(): Promise<Loaded<ChatSummary[]>> {
  const loaded = await getJson<{ chats: ChatSummary[] }>('/api/chats', { chats: [] });
  return { data: loaded.data.chats ?? [], error: loaded.error };
}

/** The signed-in user's name with auth on (DEMO_JWT_SECRET), else null. */
export async function signedInUser(): Promise<string | null> {
  const secret = sessionSecret();
  if (!secret) return null;
  return sessionUser((await cookies()).get(SESSION_COOKIE)?.value, secret);
}

export function loadModels(): Promise<Loaded<ModelList>> {
  return getJson<ModelList>('/api/models', { models: [], default: null });
}
