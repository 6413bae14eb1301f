'use client';

import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useCallback, useEffect, useRef, useState } from 'react';
import { newChatId } from '@/lib/ids';
import type { ChatSummary } from '@/lib/types';

const CHATS_CHANGED = 'aisdk-bridge-demo:chats-changed';

/** Ask every sidebar on the page to refresh its chat list. */
export function notifyChatsChanged() {
  window.dispatchEvent(new Event(CHATS_CHANGED));
}

function toDate(value: string | number | null | undefined): Date | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return new Date(value < 1e12 ? value * 1000 : value);
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function ago(value: ChatSummary['updatedAt']): string {
  const date = toDate(value);
  if (!date) return '';
  const seconds = Math.max(0, (Date.now() - date.getTime()) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return date.toLocaleDateString('en-US', { month: 'short', day: 'numeric' });
}

type Props = { initialChats: ChatSummary[]; activeId: string };

export function Sidebar({ initialChats, activeId }: Props) {
  const router = useRouter();
  const [chats, setChats] = useState(initialChats);
  const [open, setOpen] = useState(false);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);

  const refresh = useCallback(async () => {
    try {
      const response = await fetch('/api/chats', { cache: 'no-store' });
      if (response.ok) setChats(((await response.json()) as { chats: ChatSummary[] }).chats ?? []);
    } catch {
      // keep the list we have
    }
  }, []);

  useEffect(() => {
    const onChange = () => {
      if (pending.current) clearTimeout(pending.current);
      pending.current = setTimeout(refresh, 300);
    };
    window.addEventListener(CHATS_CHANGED, onChange);
    window.addEventListener('focus', onChange);
    return () => {
      window.removeEventListener(CHATS_CHANGED, onChange);
      window.removeEventListener('focus', onChange);
      if (pending.current) clearTimeout(pending.current);
    };
  }, [refresh]);

  useEffect(() => setOpen(false), [activeId]);

  const listed = chats.some((chat) => chat.id === activeId)
    ? chats
    : [{ id: activeId, title: null, updatedAt: null }, ...chats];

  return (
    <aside className={`sidebar${open ? ' is-open' : ''}`} data-testid="sidebar">
      <div className="sidebar-top">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true">
            ◆
          </span>
          <span>
            aisdk-bridge <span className="brand-sub">demo</span>
          </span>
        </div>
        <button
          type="button"
          className="sidebar-toggle"
          aria-expanded={open}
          aria-label="Show chats"
          onClick={() => setOpen((value) => !value)}
        >
          ☰
        </button>
      </div>
      <button
        type="button"
        className="button button-new"
        data-testid="new-chat"
        onClick={() => router.push(`/chat/${newChatId()}`)}
      >
        <span aria-hidden="true">＋</span> New chat
      </button>
      <nav className="chat-list" data-testid="chat-list" aria-label="Chats">
        {listed.map((chat) => (
          <Link
            key={chat.id}
            href={`/chat/${encodeURIComponent(chat.id)}`}
            className={`chat-item${chat.id === activeId ? ' is-active' : ''}`}
            data-testid="chat-item"
            data-chat-id={chat.id}
            aria-current={chat.id === activeId ? 'page' : undefined}
            prefetch={false}
          >
            <span className="chat-item-title">{chat.title || 'New chat'}</span>
            <span className="chat-item-time" suppressHydrationWarning>
              {ago(chat.updatedAt)}
            </span>
          </Link>
        ))}
      </nav>
      <div className="sidebar-foot">
        Stop, reload, or open this chat on another device: the bridge keeps every chunk.
      </div>
    </aside>
  );
}
