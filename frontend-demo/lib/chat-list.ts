'use client';

import { useEffect, useSyncExternalStore } from 'react';
import type { ChatSummary } from './types';

// One chat list per page, shared by the sidebar and the chat header (for the title).
// Server-rendered props seed it; it refreshes from GET /api/chats when told to.

let chats: ChatSummary[] | null = null; // null: not fetched in this page yet
const listeners = new Set<() => void>();
let timer: ReturnType<typeof setTimeout> | null = null;

function emit() {
  listeners.forEach((listener) => listener());
}

async function refresh() {
  try {
    const response = await fetch('/api/chats', { cache: 'no-store' });
    if (!response.ok) return;
    const body = (await response.json()) as { chats?: ChatSummary[] };
    chats = body.chats ?? [];
    emit();
  } catch {
    // keep what we have
  }
}

/** Refresh the list soon (debounced): after a send, a finish, a stop. */
export function notifyChatsChanged(delayMs = 300) {
  if (timer) clearTimeout(timer);
  timer = setTimeout(refresh, delayMs);
}

/**
 * Delete a chat on the bridge (DELETE /api/chat/{id}: a running answer is stopped first),
 * then drop it from the list at once and refresh the list. False when the bridge refused.
 */
export async function deleteChat(id: string): Promise<boolean> {
  const response = await fetch(`/api/chat/${encodeURIComponent(id)}`, {
    method: 'DELETE',
    // A header a cross-site form cannot send: the bridge's CSRF rule for a DELETE.
    headers: { 'x-requested-with': 'aisdk-bridge-demo' },
  });
  if (response.status !== 204) return false;
  if (chats) {
    chats = chats.filter((chat) => chat.id !== id);
    emit();
  }
  notifyChatsChanged(0);
  return true;
}

function subscribe(listener: () => void) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The chat list: the server-rendered one until this page fetched its own. */
export function useChatList(initial: ChatSummary[]): ChatSummary[] {
  const fetched = useSyncExternalStore(
    subscribe,
    () => chats,
    () => null,
  );
  useEffect(() => {
    const onFocus = () => notifyChatsChanged(0);
    window.addEventListener('focus', onFocus);
    return () => window.removeEventListener('focus', onFocus);
  }, []);
  return fetched ?? initial;
}
