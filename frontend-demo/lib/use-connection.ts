'use client';

import type { ChatStatus } from 'ai';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { createDroppableFetch, isNetworkError } from './droppable-fetch';
import { createDroppableSocket } from './droppable-socket';
import { describeError } from './errors';
import type { RequestKind, TransportEvent } from './observed-transport';

/** What the connection badge shows. */
export type ConnectionPhase =
  | 'idle'
  | 'sending'
  | 'streaming'
  | 'reconnecting'
  | 'resumed'
  | 'stopping'
  | 'stopped'
  | 'offline'
  | 'error';

const MAX_ATTEMPTS = 8;
const FIRST_RETRY_MS = 300;
const MAX_RETRY_MS = 8000;

type Handlers = {
  /** Reconnect to the chat's running generation (useChat's `resumeStream`). */
  resume: () => Promise<void>;
  /** A resume found nothing running: reload the stored messages (the answer may have ended). */
  resync: () => Promise<void>;
};

declare global {
  interface Window {
    /** Phase history, for the browser tests and for curious humans in devtools. */
    __connectionPhases?: ConnectionPhase[];
    /** Badge text history ("Streaming · WebSocket"), likewise. */
    __connectionLabels?: string[];
  }
}

function remember<T>(history: T[], value: T) {
  if (history[history.length - 1] !== value) history.push(value);
}

/** Remember every phase (and badge text) the badge went through (read by the browser tests). */
export function usePhaseHistory(phase: ConnectionPhase, label: string) {
  useEffect(() => remember((window.__connectionPhases ??= []), phase), [phase]);
  useEffect(() => remember((window.__connectionLabels ??= []), label), [label]);
}

/**
 * Owns everything about the connection, whichever transport is used: which request is in
 * flight (reported by the observed transport), the "drop connection" control (a fetch and a
 * WebSocket class that can cut their own connections), automatic resume after a network
 * error (useChat only resumes on a page reload or when a hidden tab becomes visible) and on
 * `online`, and the reconnects the resilient transport makes by itself.
 */
export function useConnection() {
  /** The kind of the request whose response is being read (null: none). */
  const [inflight, setInflight] = useState<RequestKind | null>(null);
  const [recovering, setRecovering] = useState(false);
  /** The transport itself is reconnecting mid-answer (the resilient one does that). */
  const [relinking, setRelinking] = useState(false);
  /** … and the answer went on after such a reconnect. */
  const [relinked, setRelinked] = useState(false);
  const [gaveUp, setGaveUp] = useState(false);
  const [offline, setOffline] = useState(false);
  const [stopping, setStopping] = useState(false);
  const [stopped, setStopped] = useState(false);

  const handlers = useRef<Handlers | null>(null);
  const attempts = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const recoveringRef = useRef(false);
  const relinkingRef = useRef(false);
  const stoppedRef = useRef(false);

  const setRecoveringBoth = (value: boolean) => {
    recoveringRef.current = value;
    setRecovering(value);
  };

  const setRelinkingBoth = (value: boolean) => {
    relinkingRef.current = value;
    setRelinking(value);
  };

  const clearTimer = () => {
    if (timer.current) clearTimeout(timer.current);
    timer.current = null;
  };

  const resumeNow = useCallback(() => {
    clearTimer();
    void handlers.current?.resume();
  }, []);

  const scheduleResume = useCallback(() => {
    clearTimer();
    if (stoppedRef.current) return;
    if (attempts.current >= MAX_ATTEMPTS) {
      setRecoveringBoth(false);
      setGaveUp(true);
      return;
    }
    setRecoveringBoth(true);
    setGaveUp(false);
    if (typeof navigator !== 'undefined' && !navigator.onLine) {
      setOffline(true); // the `online` listener resumes
      return;
    }
    const delay = Math.min(FIRST_RETRY_MS * 2 ** attempts.current, MAX_RETRY_MS);
    attempts.current += 1;
    timer.current = setTimeout(resumeNow, delay);
  }, [resumeNow]);

  /** For `observeTransport`: what the Chat's transport is doing. */
  const onTransportEvent = useCallback((event: TransportEvent) => {
    switch (event.type) {
      case 'request':
        if (event.kind === 'send') {
          // A new turn: forget the previous stop / failure.
          stoppedRef.current = false;
          setStopped(false);
          setGaveUp(false);
          attempts.current = 0;
          clearTimer();
          setRecoveringBoth(false);
        }
        setRelinkingBoth(false);
        setRelinked(false);
        setInflight(event.kind);
        return;
      case 'resume-answer': {
        const wasRecovering = recoveringRef.current;
        attempts.current = 0;
        setRecoveringBoth(false);
        if (!event.found && wasRecovering) void handlers.current?.resync();
        return;
      }
      case 'chunk':
        if (relinkingRef.current) {
          setRelinkingBoth(false);
          setRelinked(true);
        }
        return;
      case 'end':
        setRelinkingBoth(false);
        setInflight((current) => (current === event.kind ? null : current));
        return;
    }
  }, []);

  /** For the resilient transport's `onReconnect`: it lost the connection mid-answer. */
  const onTransportReconnect = useCallback(() => {
    if (!stoppedRef.current) setRelinkingBoth(true);
  }, []);

  const droppableFetch = useMemo(() => createDroppableFetch(), []);
  const droppableSocket = useMemo(() => createDroppableSocket(), []);

  /** useChat `onError`: returns true when the error is handled by an automatic resume. */
  const onError = useCallback(
    (error: unknown): boolean => {
      if (stoppedRef.current) return false;
      // While recovering, a 5xx (the bridge restarting behind the Next.js proxy) is retried too.
      const status = describeError(error).status;
      const retryable =
        isNetworkError(error) || (recoveringRef.current && status !== undefined && status >= 500);
      if (!retryable) return false;
      scheduleResume();
      return true;
    },
    [scheduleResume],
  );

  useEffect(() => {
    const goOnline = () => {
      setOffline(false);
      if (recoveringRef.current) {
        attempts.current = 0;
        resumeNow();
      }
    };
    const goOffline = () => setOffline(true);
    setOffline(!navigator.onLine);
    window.addEventListener('online', goOnline);
    window.addEventListener('offline', goOffline);
    return () => {
      window.removeEventListener('online', goOnline);
      window.removeEventListener('offline', goOffline);
      clearTimer();
    };
  }, [resumeNow]);

  /** The badge state, given useChat's status. */
  const phaseFor = (status: ChatStatus): ConnectionPhase => {
    if (offline) return 'offline';
    if (stopping) return 'stopping';
    if (relinking && (status === 'submitted' || status === 'streaming')) return 'reconnecting';
    if (status === 'streaming') return inflight === 'resume' || relinked ? 'resumed' : 'streaming';
    if (status === 'submitted') return inflight === 'resume' ? 'reconnecting' : 'sending';
    if (recovering) return 'reconnecting';
    if (status === 'error' || gaveUp) return 'error';
    if (stopped) return 'stopped';
    return 'idle';
  };

  return {
    phaseFor,
    /** For the HTTP transports. */
    fetch: droppableFetch.fetch,
    /** For the WebSocket transports. */
    webSocket: droppableSocket.WebSocket,
    onTransportEvent,
    onTransportReconnect,
    /** Cut the in-flight requests and sockets on purpose; recovery follows automatically. */
    drop: () => droppableFetch.drop() + droppableSocket.drop(),
    onError,
    /** Give the hook the chat functions it calls (call on every render). */
    bind(next: Handlers) {
      handlers.current = next;
    },
    /** Try again now (after giving up, or from a "retry" button). */
    retry() {
      attempts.current = 0;
      setGaveUp(false);
      setRecoveringBoth(true);
      resumeNow();
    },
    /** Forget a failure the user dismissed. */
    dismiss() {
      setGaveUp(false);
    },
    beginStop() {
      stoppedRef.current = true;
      clearTimer();
      setRecoveringBoth(false);
      setRelinkingBoth(false);
      setStopping(true);
    },
    endStop() {
      setStopping(false);
      setStopped(true);
    },
  };
}
