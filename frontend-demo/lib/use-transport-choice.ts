'use client';

import { useCallback, useEffect, useState } from 'react';
import {
  DEFAULT_TRANSPORT,
  TRANSPORT_PARAM,
  TRANSPORT_STORAGE_KEY,
  parseTransportChoice,
  type TransportChoice,
} from './transport-choice';

function readStored(): TransportChoice | null {
  try {
    return parseTransportChoice(window.localStorage.getItem(TRANSPORT_STORAGE_KEY));
  } catch {
    return null; // storage disabled
  }
}

function store(choice: TransportChoice) {
  try {
    window.localStorage.setItem(TRANSPORT_STORAGE_KEY, choice);
  } catch {
    // storage disabled: the URL still carries the choice
  }
}

/** Put the choice in the address bar without a navigation (a reload keeps it). */
function showInUrl(choice: TransportChoice) {
  const url = new URL(window.location.href);
  if (url.searchParams.get(TRANSPORT_PARAM) === choice) return;
  url.searchParams.set(TRANSPORT_PARAM, choice);
  window.history.replaceState(window.history.state, '', url);
}

/**
 * The transport choice: `?transport=` of the URL (the server passes it as `fromUrl`), else
 * the last choice made in this browser, else SSE. `ready` turns true once the browser's
 * stored choice is known: the chat resumes only then, so it resumes on the right transport.
 */
export function useTransportChoice(
  fromUrl: TransportChoice | null,
): { choice: TransportChoice; ready: boolean; choose: (choice: TransportChoice) => void } {
  const [choice, setChoice] = useState<TransportChoice>(fromUrl ?? DEFAULT_TRANSPORT);
  const [ready, setReady] = useState(fromUrl !== null);

  useEffect(() => {
    if (fromUrl) {
      store(fromUrl);
    } else {
      const stored = readStored();
      if (stored) {
        setChoice(stored);
        if (stored !== DEFAULT_TRANSPORT) showInUrl(stored);
      }
    }
    setReady(true);
  }, [fromUrl]);

  const choose = useCallback((next: TransportChoice) => {
    setChoice(next);
    store(next);
    showInUrl(next);
  }, []);

  return { choice, ready, choose };
}
