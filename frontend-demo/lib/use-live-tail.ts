'use client';

import { useEffect, useRef } from 'react';

declare global {
  interface Window {
    /** The live tail's state, for the browser tests and for devtools. */
    __liveTail?: { open: boolean; turnsSeen: number; followed: number };
  }
}

/**
 * Follow the chat on the bridge's live tail (`GET /api/chat/{id}/live?current=false`):
 * `onTurn` is called with the generation id whenever a turn starts in this chat, in this tab
 * or elsewhere (the tail's `data-user-message` event, sent as each generation begins); it
 * resolves to whether the page followed that turn. The turn running when the page loads is
 * left out: `useChat({resume: true})` resumes it already.
 *
 * EventSource reconnects by itself and sends `Last-Event-ID`, which the bridge honours, so a
 * dropped tail misses no turn. Returns a ref telling whether the tail is connected (the
 * page's fallback check can rest while it is).
 */
export function useLiveTail(id: string, onTurn: (generationId: string) => Promise<boolean>) {
  const onTurnRef = useRef(onTurn);
  onTurnRef.current = onTurn;
  const open = useRef(false);

  useEffect(() => {
    if (typeof EventSource === 'undefined') return;
    const state = { open: false, turnsSeen: 0, followed: 0 };
    window.__liveTail = state;
    const source = new EventSource(`/api/chat/${encodeURIComponent(id)}/live?current=false`);
    source.onopen = () => {
      open.current = state.open = true;
    };
    source.onerror = () => {
      // EventSource retries by itself; until then the page falls back to its own checks.
      open.current = state.open = source.readyState === EventSource.OPEN;
    };
    source.onmessage = (event: MessageEvent<string>) => {
      let chunk: { type?: string; data?: { generationId?: string } };
      try {
        chunk = JSON.parse(event.data);
      } catch {
        return;
      }
      if (chunk.type !== 'data-user-message' || !chunk.data?.generationId) return;
      state.turnsSeen += 1;
      void onTurnRef.current(chunk.data.generationId).then((followed) => {
        if (followed) state.followed += 1;
      });
    };
    return () => {
      source.close();
      open.current = false;
      if (window.__liveTail === state) window.__liveTail = undefined;
    };
  }, [id]);

  return open;
}
