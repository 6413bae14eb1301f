'use client';

import { ResilientChatTransport, type Tier } from '@aisdk-bridge/resilient-transport';
import { DefaultChatTransport, WebSocketChatTransport, type ChatTransport } from 'ai';
import { useEffect, useMemo, useReducer } from 'react';
import { observeTransport } from './observed-transport';
import type { TransportChoice } from './transport-choice';
import type { ChatMessage } from './types';
import type { useConnection } from './use-connection';

export type { Tier };

/** The bridge's chat endpoint. Next.js proxies it (HTTP and WebSocket upgrades alike). */
const API = '/api/chat';

type Connection = Pick<
  ReturnType<typeof useConnection>,
  'fetch' | 'webSocket' | 'onTransportEvent' | 'onTransportReconnect'
>;

/** The stock transport types its `webSocket` option a little narrower than the DOM's class. */
type StockWebSocket = ConstructorParameters<typeof WebSocketChatTransport>[0]['webSocket'];

/** Transports whose close is scheduled (see useChatTransport). */
const closing = new Map<object, ReturnType<typeof setTimeout>>();

type Made = { transport: ChatTransport<ChatMessage>; tier: () => Tier | null };

function makeTransport(
  choice: TransportChoice,
  connection: Connection,
  body: () => object,
  onTierChange: () => void,
): Made {
  if (choice === 'ws') {
    const transport = new WebSocketChatTransport<ChatMessage>({
      url: API,
      body,
      webSocket: connection.webSocket as StockWebSocket,
    });
    return { transport, tier: () => null };
  }
  if (choice === 'auto') {
    const transport = new ResilientChatTransport<ChatMessage>({
      api: API,
      body,
      fetch: connection.fetch,
      webSocket: connection.webSocket,
      // The Stop button stops generations (POST …/stop); a chat that unmounts must not.
      stopOnAbort: false,
      onTierChange: (tier, previous, reason) => {
        console.info(`chat transport: ${previous} -> ${tier} (${reason})`);
        onTierChange();
      },
      onReconnect: () => connection.onTransportReconnect(),
    });
    return { transport, tier: () => transport.tier };
  }
  // The demo runs ai 7: it says so, and gets every v7 chunk (a retried step's `reset-step`).
  const headers = { 'x-ai-sdk-level': '7' };
  const transport = new DefaultChatTransport<ChatMessage>({ api: API, fetch: connection.fetch, body, headers });
  return { transport, tier: () => null };
}

/**
 * The Chat's transport for the chosen kind, observed for the connection badge, and, for
 * `auto`, the tier it is on. A transport that is replaced or unmounted is closed (its
 * socket with it); the close waits a tick so that React's development double mount, which
 * unmounts and mounts again at once, keeps the same transport alive.
 */
export function useChatTransport(
  choice: TransportChoice,
  connection: Connection,
  body: () => object,
): { transport: ChatTransport<ChatMessage>; tier: Tier | null } {
  // The tier is read from the transport; a change of tier re-renders.
  const [, tierChanged] = useReducer((n: number) => n + 1, 0);
  const { fetch, webSocket, onTransportEvent, onTransportReconnect } = connection;

  const made = useMemo(
    () => makeTransport(choice, { fetch, webSocket, onTransportEvent, onTransportReconnect }, body, tierChanged),
    // `body` reads a ref: a new one does not need a new transport.
    [choice, fetch, webSocket, onTransportEvent, onTransportReconnect],
  );
  const transport = useMemo(
    () => observeTransport(made.transport, onTransportEvent),
    [made, onTransportEvent],
  );

  useEffect(() => {
    const pending = closing.get(made.transport);
    if (pending) clearTimeout(pending);
    closing.delete(made.transport);
    return () => {
      closing.set(
        made.transport,
        setTimeout(() => {
          closing.delete(made.transport);
          made.transport.close?.();
        }, 0),
      );
    };
  }, [made]);

  return { transport, tier: made.tier() };
}

