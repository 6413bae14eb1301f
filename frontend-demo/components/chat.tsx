'use client';

import { useChat } from '@ai-sdk/react';
import { lastAssistantMessageIsCompleteWithApprovalResponses, type FileUIPart } from 'ai';
import { useCallback, useEffect, useRef, useState } from 'react';
import { MAX_FILE_BYTES, toFileParts } from '@/lib/attachments';
import { notifyChatsChanged, useChatList } from '@/lib/chat-list';
import { CLIENT_TOOLS, lastStepClientToolsDone } from '@/lib/client-tools';
import { describeError, isChatBusy, sleep, withSocketHint } from '@/lib/errors';
import type { TransportChoice } from '@/lib/transport-choice';
import type { ChatMessage, ModelList, StoredChat } from '@/lib/types';
import { useChatTransport } from '@/lib/use-chat-transport';
import { useConnection, usePhaseHistory } from '@/lib/use-connection';
import { useLiveTail } from '@/lib/use-live-tail';
import { useSessionSignals } from '@/lib/use-session-signals';
import { useTransportChoice } from '@/lib/use-transport-choice';
import { Composer } from './composer';
import { ConnectionBadge, badgeLabel } from './connection-badge';
import { EmptyState } from './empty-state';
import { Message } from './message';
import { ModelPicker, useModelChoice } from './model-picker';
import { PendingMessages } from './pending-messages';
import { TransportPicker } from './transport-picker';

type Props = {
  id: string;
  title: string | null;
  initialMessages: ChatMessage[];
  models: ModelList;
  loadError: string | null;
  /** `?transport=` of the page's URL, if valid. */
  transportFromUrl: TransportChoice | null;
};

declare global {
  interface Window {
    __demoChat?: {
      id: string;
      status: string;
      messages: ChatMessage[];
      transport: TransportChoice;
      tier: string | null;
    };
  }
}

/**
 * How often an idle page asks whether another tab or device started an answer here, while
 * the live tail (which tells at once) is not connected.
 */
const FOLLOW_INTERVAL_MS = 4000;

async function fetchStoredChat(id: string): Promise<StoredChat | null> {
  try {
    const response = await fetch(`/api/chat/${encodeURIComponent(id)}/messages`, {
      cache: 'no-store',
    });
    return response.ok ? ((await response.json()) as StoredChat) : null;
  } catch {
    return null;
  }
}

export function Chat({ id, title, initialMessages, models, loadError, transportFromUrl }: Props) {
  const [model, setModel] = useModelChoice(models);
  const modelRef = useRef(model);
  modelRef.current = model;

  const [notice, setNotice] = useState<string | null>(null);
  const signals = useSessionSignals(id, setNotice);
  const connection = useConnection();
  const resyncRef = useRef<() => Promise<void>>(async () => {});

  const transportChoice = useTransportChoice(transportFromUrl);
  const { transport, tier } = useChatTransport(
    transportChoice.choice,
    connection,
    // A function, so that automatic resubmits (tool approvals) carry the current choice.
    () => (modelRef.current ? { model: modelRef.current } : {}),
  );

  const chat = useChat<ChatMessage>({
    id,
    messages: initialMessages,
    transport,
    // Once the stored transport choice is known, so that the resume uses it.
    resume: transportChoice.ready,
    throttle: 30,
    sendAutomaticallyWhen: (options) =>
      lastAssistantMessageIsCompleteWithApprovalResponses(options) ||
      lastStepClientToolsDone(options),
    onToolCall: ({ toolCall }) => {
      const run = CLIENT_TOOLS[toolCall.toolName];
      if (!run) return;
      // Not awaited: addToolOutput waits for the running response to finish.
      void Promise.resolve()
        .then(() => run(toolCall.input))
        .then(
          (output) =>
            chat.addToolOutput({ tool: toolCall.toolName, toolCallId: toolCall.toolCallId, output }),
          (failure: unknown) =>
            chat.addToolOutput({
              state: 'output-error',
              tool: toolCall.toolName,
              toolCallId: toolCall.toolCallId,
              errorText: failure instanceof Error ? failure.message : String(failure),
            }),
        );
    },
    onError: (error) => {
      if (connection.onError(error)) return; // a network drop: resuming by itself
      if (isChatBusy(error)) {
        // Another tab or device is answering in this chat right now: follow that answer.
        setNotice('This chat is already answering elsewhere; following that answer.');
        void resyncRef.current();
      }
    },
    // Transient chunks: steering outcomes, recovery (see useSessionSignals).
    onData: signals.onData,
    onFinish: () => notifyChatsChanged(),
  });
  const { messages, setMessages, resumeStream, sendMessage, regenerate, stop, error, clearError } =
    chat;

  const messagesRef = useRef(messages);
  messagesRef.current = messages;

  // Expose the client state read-only, for the browser tests and for devtools.
  useEffect(() => {
    window.__demoChat = {
      id,
      status: chat.status,
      messages,
      transport: transportChoice.choice,
      tier,
    };
  }, [id, chat.status, messages, transportChoice.choice, tier]);

  /**
   * Replace the local messages with the stored ones (the bridge is the source of truth), and
   * follow the generation the bridge reports as running, if any.
   */
  const resync = useCallback(
    async ({ waitForIdle = false }: { waitForIdle?: boolean } = {}) => {
      let stored = await fetchStoredChat(id);
      for (let i = 0; waitForIdle && stored?.activeGenerationId && i < 20; i++) {
        await sleep(150);
        stored = await fetchStoredChat(id);
      }
      if (!stored) return;
      if (stored.activeGenerationId && !waitForIdle) {
        setMessages(stored.messages);
        await resumeStream();
        return;
      }
      const storedIds = new Set(stored.messages.map((m) => m.id));
      const local = messagesRef.current;
      // Keep local messages the bridge does not have (a send that never arrived, an answer a
      // restarted bridge without Redis forgot) rather than lose them from the screen.
      if (local.some((m) => !storedIds.has(m.id))) {
        setNotice('The bridge does not have the end of this conversation; it may be incomplete.');
        return;
      }
      setMessages(stored.messages);
    },
    [id, resumeStream, setMessages],
  );
  resyncRef.current = resync;
  connection.bind({ resume: resumeStream, resync });

  // Watch for answers started by another tab or device while this page is idle.
  const busy = chat.status === 'submitted' || chat.status === 'streaming';
  const phase = connection.phaseFor(chat.status);
  const shownTier = transportChoice.choice === 'auto' ? tier : null;
  usePhaseHistory(phase, badgeLabel(phase, shownTier));
  const idle = !busy && phase !== 'reconnecting' && phase !== 'stopping';
  const idleRef = useRef(idle);
  idleRef.current = idle;
  // A turn started anywhere (another tab, another device): an idle page shows its user
  // message and follows its answer at once. This page's own turns arrive while it is busy.
  const liveTailOpen = useLiveTail(id, async () => {
    if (!idleRef.current) return false;
    const stored = await fetchStoredChat(id);
    if (!idleRef.current || !stored?.activeGenerationId) return false;
    setMessages(stored.messages);
    void resumeStream(); // its errors reach onError; it resolves when the answer ends
    return true;
  });
  useEffect(() => {
    if (!idle) return;
    let cancelled = false;
    const check = async () => {
      if (document.visibilityState !== 'visible') return;
      const stored = await fetchStoredChat(id);
      if (!cancelled && stored?.activeGenerationId) {
        setMessages(stored.messages);
        await resumeStream();
      }
    };
    const interval = setInterval(() => {
      if (!liveTailOpen.current) void check();
    }, FOLLOW_INTERVAL_MS);
    const onVisible = () => void check();
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      cancelled = true;
      clearInterval(interval);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [idle, id, resumeStream, setMessages, liveTailOpen]);

  const send = useCallback(
    async (text: string, files: File[] = []) => {
      setNotice(null);
      clearError();
      const tooBig = files.find((file) => file.size > MAX_FILE_BYTES);
      if (tooBig) {
        setNotice(`${tooBig.name} is over ${MAX_FILE_BYTES / 1024 / 1024} MB; attach a smaller file.`);
        return;
      }
      const parts = files.length > 0 ? await toFileParts(files) : undefined;
      void sendMessage(text ? { text, files: parts } : { files: parts ?? [] });
      notifyChatsChanged();
    },
    [sendMessage, clearError],
  );

  // Edit and resend: the message is replaced (same id), the answers after it are dropped.
  const edit = useCallback(
    (messageId: string, text: string, files: FileUIPart[]) => {
      setNotice(null);
      clearError();
      void sendMessage({ text, files, messageId });
    },
    [sendMessage, clearError],
  );
  const regenerateAnswer = useCallback(
    (messageId: string) => {
      setNotice(null);
      clearError();
      void regenerate({ messageId });
    },
    [regenerate, clearError],
  );

  const handleStop = useCallback(async () => {
    connection.beginStop();
    // Stop the generation on the bridge (a local stop alone only closes this tab's
    // connection: the answer would go on and come back on the next resume).
    const serverStop = fetch(`/api/chat/${encodeURIComponent(id)}/stop`, { method: 'POST' })
      .then((response) => (response.ok ? response.json() : null))
      .catch(() => null);
    await Promise.race([serverStop, sleep(2000)]);
    await stop();
    // Show exactly what the bridge stored (it may have written a few tokens more).
    await resync({ waitForIdle: true });
    connection.endStop();
    notifyChatsChanged();
  }, [connection, id, stop, resync]);

  const handleDrop = useCallback(() => {
    if (connection.drop() === 0) setNotice('No connection to drop right now.');
  }, [connection]);

  // A queued message began (or the page missed the turn's start while busy): follow it.
  const { settle } = signals;
  const queuedRunning = signals.pending.some((item) => item.kind === 'queue' && item.state === 'running');
  useEffect(() => {
    settle(new Set(messages.map((message) => message.id)));
  }, [messages, settle, signals.pending]);
  useEffect(() => {
    if (idle && queuedRunning) void resync();
  }, [idle, queuedRunning, resync]);

  // Stable (the Chat instance's method), so that unchanged messages skip re-rendering.
  const { addToolApprovalResponse } = chat;
  const approve = useCallback(
    (approvalId: string, approved: boolean) => {
      void addToolApprovalResponse({ id: approvalId, approved });
    },
    [addToolApprovalResponse],
  );

  // Keep the newest text in view while it streams, unless the reader scrolled up.
  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  useEffect(() => {
    const el = scroller.current;
    if (el && pinned.current) el.scrollTop = el.scrollHeight;
  }, [messages, chat.status]);

  const shownError =
    phase === 'error' && error ? withSocketHint(describeError(error).message) : null;
  const lastId = messages[messages.length - 1]?.id;
  const streamingId = busy && messages[messages.length - 1]?.role === 'assistant' ? lastId : null;
  const canStop = busy || phase === 'reconnecting';
  const listedTitle = useChatList([]).find((chat) => chat.id === id)?.title;
  const firstUserText = messages
    .find((m) => m.role === 'user')
    ?.parts.find((p) => p.type === 'text')?.text;
  const shownTitle = listedTitle || title || firstUserText?.slice(0, 80) || 'New chat';

  return (
    <main className="chat" data-testid="chat" data-chat-id={id} data-status={chat.status}>
      <header className="chat-header">
        <h1 className="chat-title" data-testid="chat-title" title={shownTitle}>
          {shownTitle}
        </h1>
        <div className="chat-header-controls">
          <ModelPicker models={models} value={model} onChange={setModel} disabled={busy} />
          <TransportPicker
            value={transportChoice.choice}
            onChange={transportChoice.choose}
            // Open between reconnect attempts: the next attempt then uses the new choice.
            disabled={busy || phase === 'stopping'}
          />
          <ConnectionBadge phase={phase} tier={shownTier} />
          <button
            type="button"
            className="button button-ghost"
            data-testid="drop-connection"
            onClick={handleDrop}
            disabled={!busy}
            title="Cut the connection (HTTP request or WebSocket) on purpose; the page resumes the answer by itself"
          >
            <span>
              Drop<span className="hide-sm"> connection</span>
            </span>
          </button>
        </div>
      </header>

      {loadError ? (
        <div className="banner banner-warning" data-testid="load-error">
          Could not load this chat from the bridge: {loadError}
        </div>
      ) : null}

      <div
        className="messages"
        ref={scroller}
        data-testid="messages"
        onScroll={(event) => {
          const el = event.currentTarget;
          pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        }}
      >
        <div className="messages-inner">
          {messages.length === 0 ? (
            <EmptyState onPick={send} />
          ) : (
            messages.map((message) => (
              <Message
                key={message.id}
                message={message}
                streaming={message.id === streamingId}
                onApproval={approve}
                onEdit={idle ? edit : null}
                onRegenerate={idle && message.id === lastId && message.role === 'assistant' ? regenerateAnswer : null}
                steering={message.id === lastId ? signals.outcomes : undefined}
              />
            ))
          )}
          {chat.status === 'submitted' ? (
            <div className="thinking" data-testid="thinking">
              <span />
              <span />
              <span />
            </div>
          ) : null}
        </div>
      </div>

      <div className="chat-footer">
        {signals.recovery ? (
          <div
            className={`banner ${signals.recovery.phase === 'failed' ? 'banner-error' : 'banner-warning'}`}
            data-testid="recovering"
            data-phase={signals.recovery.phase}
          >
            {signals.recovery.phase === 'failed'
              ? `The answer could not be recovered${signals.recovery.reason ? `: ${signals.recovery.reason}` : ''}.`
              : signals.recovery.phase === 'resumed'
                ? 'Recovered: the answer goes on where it was.'
                : `Recovering the answer${signals.recovery.attempt ? ` (attempt ${signals.recovery.attempt})` : ''}: its server went away, another one takes it over…`}
          </div>
        ) : null}
        <PendingMessages items={signals.pending} onDismiss={signals.dismiss} />
        {notice ? (
          <div className="banner banner-info" data-testid="notice">
            <span>{notice}</span>
            <button type="button" className="link-button" onClick={() => setNotice(null)}>
              Dismiss
            </button>
          </div>
        ) : null}
        {shownError ? (
          <div className="banner banner-error" role="alert" data-testid="error-banner">
            <span>{shownError}</span>
            <span className="banner-actions">
              <button type="button" className="link-button" onClick={() => connection.retry()}>
                Reconnect
              </button>
              {messages[messages.length - 1]?.role === 'user' ? (
                <button
                  type="button"
                  className="link-button"
                  data-testid="retry-send"
                  onClick={() => void regenerate()}
                >
                  Send again
                </button>
              ) : null}
              <button
                type="button"
                className="link-button"
                onClick={() => {
                  connection.dismiss();
                  clearError();
                }}
              >
                Dismiss
              </button>
            </span>
          </div>
        ) : null}
        <Composer
          onSend={(text, files) => void send(text, files)}
          onSteer={(text) => {
            setNotice(null);
            void signals.steer(text);
          }}
          onQueue={(text) => {
            setNotice(null);
            void signals.queue(text, modelRef.current ? { model: modelRef.current } : {});
          }}
          onStop={handleStop}
          canStop={canStop}
          stopping={phase === 'stopping'}
          disabled={busy || phase === 'reconnecting' || phase === 'stopping'}
        />
      </div>
    </main>
  );
}
