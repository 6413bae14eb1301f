'use client';

import { useCallback, useEffect, useState } from 'react';
import type { Recovery, SteeringOutcome, SteeringOutcomes } from './types';

/** A message sent while an answer runs: steered into it, or queued as the next turn. */
export type PendingMessage = {
  id: string;
  text: string;
  kind: 'steer' | 'queue';
  /** steer: queued → delivered | not-delivered; queue: queued → running | dropped. */
  state: 'queued' | 'delivered' | 'not-delivered' | 'running' | 'dropped';
  reason?: string;
};

type DataPart = { type: string; id?: string; data?: unknown };

declare global {
  interface Window {
    /** Every `data-recovering` phase this page was told, for the browser tests. */
    __recoveryPhases?: string[];
    /** The ids of the `data-steering-outcome` chunks this page was given by useChat. */
    __steeringOutcomeChunks?: string[];
  }
}

const RESUMED_SHOWN_MS = 4000;

function userMessage(id: string, text: string) {
  return { id, role: 'user', parts: [{ type: 'text', text }] };
}

/** The `data: {...}` chunks of an SSE body, as they come. */
async function* sseChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<DataPart> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        try {
          yield JSON.parse(line.slice(6)) as DataPart;
        } catch {
          // not a chunk: skip it
        }
      }
    }
  }
}

/**
 * What the bridge tells about a chat's session besides the answer's text: steering outcomes
 * (`data-steering-outcome`), queued next turns (`data-busy`), and recovery
 * (`data-recovering`). `onData` goes to `useChat({ onData })`: these chunks are transient.
 */
export function useSessionSignals(chatId: string, notify: (text: string) => void) {
  const [outcomes, setOutcomes] = useState<SteeringOutcomes>({});
  const [pending, setPending] = useState<PendingMessage[]>([]);
  const [recovery, setRecovery] = useState<Recovery | null>(null);

  // "Recovered" stays a moment (a replay brings `recovering` and `resumed` together), then goes.
  useEffect(() => {
    if (recovery?.phase !== 'resumed') return;
    const timer = setTimeout(() => setRecovery(null), RESUMED_SHOWN_MS);
    return () => clearTimeout(timer);
  }, [recovery]);

  const update = useCallback((id: string, change: Partial<PendingMessage>) => {
    setPending((list) => list.map((item) => (item.id === id ? { ...item, ...change } : item)));
  }, []);

  const decided = useCallback(
    (id: string, outcome: SteeringOutcome) => {
      setOutcomes((known) => ({ ...known, [id]: outcome }));
      update(id, {
        state: outcome.type,
        reason: outcome.type === 'not-delivered' ? outcome.reason : undefined,
      });
    },
    [update],
  );

  const onData = useCallback(
    (part: DataPart) => {
      if (part.type === 'data-steering-outcome' && part.id) {
        (window.__steeringOutcomeChunks ??= []).push(part.id);
        decided(part.id, part.data as SteeringOutcome);
      } else if (part.type === 'data-recovering') {
        const next = part.data as Recovery;
        (window.__recoveryPhases ??= []).push(next.phase);
        setRecovery(next);
      }
    },
    [decided],
  );

  /** Steer the running answer (the bridge's steer endpoint, mode `queue`). */
  const steer = useCallback(
    async (text: string) => {
      const id = crypto.randomUUID();
      setPending((list) => [...list, { id, text, kind: 'steer', state: 'queued' }]);
      const response = await fetch(`/api/chat/${encodeURIComponent(chatId)}/steer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message: userMessage(id, text), mode: 'queue' }),
      }).catch(() => null);
      if (response?.ok) {
        // The outcome also comes as a chunk of the answer; this page may stop reading the
        // answer first (a stop), so it asks the steer endpoint too (?wait: long-poll).
        const url = `/api/chat/${encodeURIComponent(chatId)}/steer/${encodeURIComponent(id)}?wait=30`;
        for (let attempt = 0; attempt < 10; attempt++) {
          const record = await fetch(url)
            .then((answer) => (answer.ok ? answer.json() : null))
            .catch(() => null);
          if (!record) return;
          if (record.outcome) return decided(id, record.outcome as SteeringOutcome);
        }
        return;
      }
      setPending((list) => list.filter((item) => item.id !== id));
      notify(
        response?.status === 409
          ? `The answer had ended; send “${text.slice(0, 60)}” as a new message.`
          : 'Could not steer the answer; try again.',
      );
    },
    [chatId, notify, decided],
  );

  /**
   * Send a message as the next turn while the answer runs (busy policy `queue`): the bridge
   * keeps it (durable, every device sees it queued) and starts it when the answer ends. Its
   * response says `data-busy` queued, then carries the turn (or `data-busy` dropped on a stop).
   */
  const queue = useCallback(
    async (text: string, body: object) => {
      const id = crypto.randomUUID();
      setPending((list) => [...list, { id, text, kind: 'queue', state: 'queued' }]);
      const response = await fetch('/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-bridge-busy': 'queue' },
        body: JSON.stringify({ ...body, id: chatId, message: userMessage(id, text) }),
      }).catch(() => null);
      if (!response?.ok || !response.body) {
        setPending((list) => list.filter((item) => item.id !== id));
        notify('Could not queue the message; try again.');
        return;
      }
      // Read to the end: the page itself shows the turn (it follows the chat's answers).
      for await (const chunk of sseChunks(response.body)) {
        const busy = chunk.type === 'data-busy' ? (chunk.data as { state?: string; reason?: string }) : null;
        if (busy?.state === 'dropped') update(id, { state: 'dropped', reason: busy.reason });
        else if (chunk.type === 'start') update(id, { state: 'running' });
      }
    },
    [chatId, notify, update],
  );

  /** Forget what the chat now shows: delivered steers, queued turns that are in it. */
  const settle = useCallback((shownIds: Set<string>) => {
    setPending((list) => {
      const kept = list.filter(
        (item) => item.state !== 'delivered' && !(item.kind === 'queue' && shownIds.has(item.id)),
      );
      return kept.length === list.length ? list : kept;
    });
  }, []);

  const dismiss = useCallback((id: string) => {
    setPending((list) => list.filter((item) => item.id !== id));
  }, []);

  return { outcomes, pending, recovery, onData, steer, queue, settle, dismiss };
}
