'use client';

import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useEffect, useState } from 'react';
import { signOut } from '@/app/actions';
import { deleteChat, useChatList } from '@/lib/chat-list';
import { newChatId } from '@/lib/ids';
import type { ChatSummary } from '@/lib/types';
import { Brand } from './brand';

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

type Props = {
  initialChats: ChatSummary[];
  activeId: string;
  /** Signed in with the bridge's auth on; null in anonymous mode. */
  user: string | null;
};

export function Sidebar({ initialChats, activeId, user }: Props) {
  const router = useRouter();
  const chats = useChatList(initialChats);
  const [open, setOpen] = useState(false);

  useEffect(() => setOpen(false), [activeId]);

  const [deleted, setDeleted] = useState<ReadonlySet<string>>(new Set());

  async function remove(chat: ChatSummary) {
    if (!window.confirm(`Delete "${chat.title || 'New chat'}"? This cannot be undone.`)) return;
    if (!(await deleteChat(chat.id))) return;
    setDeleted((gone) => new Set(gone).add(chat.id));
    if (chat.id === activeId) router.push(`/chat/${newChatId()}`);
  }

  const kept = chats.filter((chat) => !deleted.has(chat.id));
  const listed = kept.some((chat) => chat.id === activeId)
    ? kept
    : [{ id: activeId, title: null, updatedAt: null }, ...kept];

  return (
    <aside className={`sidebar${open ? ' is-open' : ''}`} data-testid="sidebar">
      <div className="sidebar-top">
        <Brand />
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
        <svg className="icon" viewBox="0 0 16 16" aria-hidden="true">
          <path d="M8 3v10M3 8h10" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" />
        </svg>
        New chat
      </button>
      <nav className="chat-list" data-testid="chat-list" aria-label="Chats">
        {listed.map((chat) => (
          <div key={chat.id} className="chat-row">
            <Link
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
            {kept.some((stored) => stored.id === chat.id) ? (
              <button
                type="button"
                className="chat-delete"
                data-testid="chat-delete"
                data-chat-id={chat.id}
                aria-label={`Delete chat "${chat.title || 'New chat'}"`}
                title="Delete chat"
                onClick={() => void remove(chat)}
              >
                <svg className="icon" viewBox="0 0 16 16" aria-hidden="true">
                  <path
                    d="M4 4l8 8M12 4l-8 8"
                    stroke="currentColor"
                    strokeWidth="1.6"
                    strokeLinecap="round"
                  />
                </svg>
              </button>
            ) : null}
          </div>
        ))}
      </nav>
      <div className="sidebar-foot">
        {user ? (
          <form action={signOut} className="signed-in" data-testid="signed-in">
            <span>
              Signed in as <strong data-testid="user-name">{user}</strong>
            </span>
            <button type="submit" className="link-button" data-testid="sign-out">
              Sign out
            </button>
          </form>
        ) : null}
        Stop, reload, or open this chat on another device: the bridge keeps every chunk.
      </div>
    </aside>
  );
}
