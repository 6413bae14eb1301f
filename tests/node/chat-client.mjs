#!/usr/bin/env node
// chat-client.mjs: drives the REAL `Chat` class of `@ai-sdk/react` (what useChat runs) with the
// real `DefaultChatTransport` (or `WebSocketChatTransport`) from `ai` against a running server,
// following a scenario, and prints what the client ended up with. AI_SDK_CLIENT=5|6 drives
// that version's `AbstractChat` instead (see ai-client.mjs).
//
// Usage:  node chat-client.mjs --scenario PATH_OR_JSON      ("-" = read the JSON from stdin)
//
// ---------------------------------------------------------------------------------------------
// Scenario (JSON object)
//   api            "http://127.0.0.1:PORT/api/chat" (required). POST target; resume is
//                  GET {api}/{chatId}/stream (the transport's own rule).
//   chatId         chat id (default: random).
//   transport      "http" (default: DefaultChatTransport) | "websocket" (WebSocketChatTransport
//                  using Node's global WebSocket; http(s) URLs become ws(s)).
//   wsUrl          WebSocket URL for transport "websocket" (default: api).
//   headers, body  transport-level headers / extra body keys (sent with every request).
//   resumeStreamIsReplay  DefaultChatTransport option (default true).
//   sendOnlyLastMessage   true: prepareSendMessagesRequest sends {id, message: <last message>}
//                  (the shape of the resume docs) instead of the default body.
//   initialMessages       UIMessage[] to seed the first Chat with.
//   loadMessages   true: seed the first Chat from GET messagesUrl instead.
//   messagesUrl    where stored messages are read (default "{api}/{chatId}/messages"; "{id}" in
//                  it is replaced by the chat id). The answer is a UIMessage[] or {messages: [...]}.
//   clientTools    { "<toolName>": { "output": <json> } | { "errorText": "..." },
//                    optional "delayMs": N } — answered from onToolCall with chat.addToolOutput
//                  (not awaited, as the docs say). Tools not listed are left unanswered.
//   auto           sendAutomaticallyWhen: "toolCalls" (lastAssistantMessageIsCompleteWithToolCalls)
//                  | "approvals" (lastAssistantMessageIsCompleteWithApprovalResponses)
//                  | "any" (either) | a list of those.
//   timeoutMs      whole-run limit (default 60000). stepTimeoutMs: default per step (15000).
//   settle         false: do not wait for the chat to settle after the last step (default true).
//   steps          list of steps (below).
//
// Steps ({"op": ..., ...}). Action steps (send, resume, regenerate, stop, addToolOutput,
// addToolApprovalResponse) are awaited (the Chat's promise: for send/regenerate that is the
// whole response) unless "wait": false, which runs them in the background (see "wait").
// "allowThrow": true records an exception from the Chat method instead of failing the run.
//   send        {"text": "hi"} | {"parts": [...]} (a whole message) | {} (no message: the
//               continuation sendMessage() after approvals); optional "files" (FileUIPart[]),
//               "metadata" (message metadata), "messageId" (edit that user message),
//               "body", "headers" (per-request), "requestMetadata".
//   resume      chat.resumeStream({body?, headers?}).
//   regenerate  chat.regenerate({messageId?, body?, headers?}).
//   stop        chat.stop() (aborts the client's fetch / sends a WebSocket abort).
//   addToolOutput  {"toolCallId" | "match", "output"} or {"toolCallId" | "match", "errorText"};
//               "tool" defaults to the matched part's tool name.
//   addToolApprovalResponse  {"id": approvalId | "match": {...}, "approved": bool, "reason"?}.
//               "match" selects the LAST tool part with all given keys: "toolName", "toolCallId",
//               "state" (default "approval-requested" here, "input-available" for
//               addToolOutput), "approvalId".
//   newChat     a page reload: the current Chat is disposed (stop(): its fetch is aborted) unless
//               "keepOld": true, and a fresh Chat with the same id is created, seeded with
//               "messages" if given, else with GET messagesUrl (unless "loadMessages": false).
//               Follow it with {"op": "resume"} to do what useChat({resume: true}) does on mount.
//   dropAfterChunks  {"n": 5, "message"?: "..."} arms a one-shot drop of the NEXT response
//               stream (POST or resume): after the Chat has received and processed n chunks
//               (validated UI message chunks, not SSE comments or [DONE]) the harness cancels the
//               real response body (HTTP: the connection is really closed, the server sees the
//               client go away; WebSocket: the socket is closed) and the Chat's stream errors
//               with TypeError(message). Default message: HTTP "terminated" (what Node's fetch
//               reports for a dropped body; NOT classified as a disconnect by Chat) — use
//               "network error" for what Chromium reports (isDisconnect: true); WebSocket: the
//               transport's own error once it sees the socket close ("WebSocket chat network
//               connection closed (code N).", a disconnect).
//   waitStatus  {"status": "ready" | ["ready", "error"]}: until chat.status is one of them.
//   waitChunks  {"n": N}: until N chunks arrived since the last action step started.
//   waitEvent   {"type": "finish", "count"?: 1, "match"?: {key: value}, "since"?: "lastAction" |
//               "start"}: until that many events (see "events") occurred.
//   wait        until every background ("wait": false) action has finished.
//   settle      until no action or response is in flight and the status is ready/error for
//               "quietMs" (default 150) with no new event (automatic sends included).
//   sleep       {"ms": 100}.
//   snapshot    {"label": "x"}: records an event with the current status, error and messages.
//   clearError  chat.clearError().
//   http        {"method"?: "GET", "url": "...", "body"?: json, "headers"?: {...}}: a plain
//               fetch (relative URLs are resolved against api), e.g. a server stop endpoint;
//               recorded as an "http" event with status and body.
// Every wait step takes "timeoutMs" (default stepTimeoutMs) and fails the run on timeout.
//
// Output (stdout, one JSON document):
//   { "ok": true, "chatId", "status": chat.status, "error": chat.error?.message ?? null,
//     "errorDetail": {name, message, statusCode?, ...} | null,
//     "messages": chat.messages (of the current Chat),
//     "events": [ {t: ms since start, type, ...} ] where type is one of
//        step {index, op} · status {status} · request {method, url, body} · response {method,
//        url, status} · fetchError · responseStart {index, kind: send|resume, trigger} ·
//        responseEnd {index, state: done|error|cancelled|dropped, chunks} · resumeNoActive ·
//        drop {afterChunks, message} · finish {messageId, isAbort, isDisconnect, isError,
//        finishReason, message} · error {error} (onError) · data {part} (onData) · toolCall
//        {toolCall} · toolOutput {toolCallId, ...} · wsConnect/wsOpen/wsClose/wsSend ·
//        stepError · http · snapshot · newChat · unhandledRejection,
//     "chunksSeen": total chunks the Chat received,
//     "responses": [ {index, kind, trigger, messageId, state, chunkCount, chunks: [...]} ],
//     "requests": [ {method, url, body} ] (HTTP requests made by the transport) }
//   On a harness failure (bad scenario, step timeout, a Chat method throwing without
//   allowThrow): exit 1, message on stderr, and the same document with ok:false and "error".
// ---------------------------------------------------------------------------------------------

import { ai, Chat, clientLevel } from './ai-client.mjs';
import { CheckFailed, describeError, parseArgs, readJsonArg, runMain, UsageError } from './lib.mjs';

// Absent from older clients (undefined): WebSocketChatTransport (ai 7 only),
// lastAssistantMessageIsCompleteWithApprovalResponses (ai 6 and 7).
const {
  DefaultChatTransport,
  getToolOrDynamicToolName,
  isToolUIPart,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  lastAssistantMessageIsCompleteWithToolCalls,
  WebSocketChatTransport,
} = ai;

const t0 = performance.now();
const now = () => Math.round(performance.now() - t0);

class Harness {
  constructor(scenario) {
    this.scenario = scenario;
    if (typeof scenario.api !== 'string') throw new UsageError('scenario.api (URL) is required');
    this.api = scenario.api;
    this.kind = scenario.transport ?? 'http';
    if (!['http', 'websocket'].includes(this.kind)) {
      throw new UsageError(`scenario.transport must be "http" or "websocket", got ${JSON.stringify(this.kind)}`);
    }
    this.chatId = scenario.chatId ?? `harness-${Math.random().toString(36).slice(2, 10)}`;
    this.stepTimeoutMs = scenario.stepTimeoutMs ?? 15000;
    this.events = [];
    this.responses = [];
    this.requests = [];
    this.chunksSeen = 0;
    this.openStreams = 0;
    this.inflightFetches = 0;
    this.pendingOps = new Set();
    this.dropArm = null;
    this.sockets = new Set();
    this.listeners = new Set();
    this.lastActionEventIndex = 0;
    this.chunksAtLastAction = 0;
    this.chat = null;
    this.autoPredicate = makeAutoPredicate(scenario.auto);
    this.WebSocketClass = this.makeWebSocketClass();
  }

  // ---- events and waiting ----------------------------------------------------------------

  record(type, data = {}) {
    this.events.push({ t: now(), type, ...data });
    this.notify();
  }

  notify() {
    for (const listener of [...this.listeners]) listener();
  }

  /** Resolves when predicate() is true; re-checked on every event and every 10 ms. */
  waitUntil(predicate, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        let value;
        try {
          value = predicate();
        } catch (error) {
          finish();
          reject(error);
          return;
        }
        if (value) {
          finish();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new CheckFailed(`timed out after ${timeoutMs} ms waiting for ${what} (status ${this.chat?.status})`));
      }, timeoutMs);
      const interval = setInterval(check, 10);
      const finish = () => {
        done = true;
        clearTimeout(timer);
        clearInterval(interval);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  track(promise, label) {
    const tracked = Promise.resolve(promise)
      .catch(error => this.record('stepError', { op: label, error: describeError(error) }))
      .finally(() => {
        this.pendingOps.delete(tracked);
        this.notify();
      });
    this.pendingOps.add(tracked);
    return tracked;
  }

  // ---- transport plumbing ----------------------------------------------------------------

  /** fetch used by DefaultChatTransport: records requests and responses. */
  fetch = async (input, init = {}) => {
    const url = String(input instanceof Request ? input.url : input);
    const method = (init.method ?? 'GET').toUpperCase();
    let body = init.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        /* keep the text */
      }
    }
    const request = { method, url, body: body ?? null };
    this.requests.push(request);
    this.record('request', request);
    this.inflightFetches++;
    try {
      const response = await fetch(input, init);
      this.record('response', { method, url, status: response.status });
      return response;
    } catch (error) {
      this.record('fetchError', { method, url, error: describeError(error) });
      throw error;
    } finally {
      this.inflightFetches--;
      this.notify();
    }
  };

  makeWebSocketClass() {
    const NativeWebSocket = globalThis.WebSocket;
    if (NativeWebSocket == null) return undefined;
    const harness = this;
    return class HarnessWebSocket extends NativeWebSocket {
      constructor(url, protocols) {
        super(url, protocols);
        harness.sockets.add(this);
        harness.record('wsConnect', { url: String(url) });
        this.addEventListener('open', () => harness.record('wsOpen', {}));
        this.addEventListener('close', event => {
          harness.sockets.delete(this);
          harness.record('wsClose', { code: event.code, reason: event.reason });
        });
      }

      send(data) {
        try {
          const frame = JSON.parse(String(data));
          const { messages, headers, ...rest } = frame;
          harness.record('wsSend', {
            frame: { ...rest, ...(messages ? { messageCount: messages.length } : {}) },
          });
        } catch {
          harness.record('wsSend', { frame: null });
        }
        return super.send(data);
      }
    };
  }

  makeTransport() {
    const { scenario } = this;
    let transport;
    if (this.kind === 'websocket') {
      if (this.WebSocketClass == null) throw new UsageError('this Node has no global WebSocket');
      if (WebSocketChatTransport == null) {
        throw new UsageError(`ai ${clientLevel} has no WebSocketChatTransport (ai 7 has)`);
      }
      transport = new WebSocketChatTransport({
        url: scenario.wsUrl ?? this.api,
        headers: scenario.headers,
        body: scenario.body,
        webSocket: this.WebSocketClass,
      });
    } else {
      transport = new DefaultChatTransport({
        api: this.api,
        headers: scenario.headers,
        body: scenario.body,
        fetch: this.fetch,
        resumeStreamIsReplay: scenario.resumeStreamIsReplay ?? true,
        ...(scenario.sendOnlyLastMessage
          ? {
              prepareSendMessagesRequest: ({ id, messages }) => ({
                body: { id, message: messages[messages.length - 1] },
              }),
            }
          : {}),
      });
    }
    const sendMessages = transport.sendMessages.bind(transport);
    transport.sendMessages = async options =>
      this.wrapStream(await sendMessages(options), {
        kind: 'send',
        trigger: options.trigger,
        messageId: options.messageId,
      });
    const reconnectToStream = transport.reconnectToStream.bind(transport);
    transport.reconnectToStream = async options => {
      const stream = await reconnectToStream(options);
      if (stream == null) {
        this.record('resumeNoActive', {});
        return null;
      }
      return this.wrapStream(stream, { kind: 'resume', trigger: 'resume-stream' });
    };
    return transport;
  }

  /**
   * Passes the transport's chunk stream to the Chat one chunk per pull (highWaterMark 0), so a
   * chunk counted here has been handed to the Chat; applies an armed drop.
   */
  wrapStream(upstream, info) {
    const response = { index: this.responses.length, ...info, state: 'open', chunks: [] };
    this.responses.push(response);
    this.openStreams++;
    this.record('responseStart', { index: response.index, kind: info.kind, trigger: info.trigger });
    const drop = this.dropArm;
    this.dropArm = null;
    const reader = upstream.getReader();
    let dropNow = drop != null && drop.n <= 0;
    let finished = false;
    const finish = (state, error) => {
      if (finished) return;
      finished = true;
      this.openStreams--;
      response.state = state;
      if (error !== undefined) response.error = describeError(error);
      this.record('responseEnd', {
        index: response.index,
        state,
        chunks: response.chunks.length,
        ...(error !== undefined ? { error: describeError(error) } : {}),
      });
    };
    return new ReadableStream(
      {
        pull: async controller => {
          if (dropNow) {
            let error;
            if (this.kind === 'websocket') {
              // Close the socket and let the transport notice (its onclose errors every active
              // stream and forgets the connection, so a later resume opens a new socket).
              for (const socket of this.sockets) socket.close();
              error = await this.transportError(reader, 3000);
            } else {
              reader.cancel(new Error('connection dropped by the test harness')).catch(() => {});
            }
            error =
              drop.message != null || error == null
                ? new TypeError(drop.message ?? 'terminated')
                : error;
            this.record('drop', {
              index: response.index,
              afterChunks: response.chunks.length,
              message: error.message,
            });
            finish('dropped', error);
            controller.error(error);
            return;
          }
          let result;
          try {
            result = await reader.read();
          } catch (error) {
            finish('error', error);
            controller.error(error);
            return;
          }
          if (result.done) {
            finish('done');
            controller.close();
            return;
          }
          response.chunks.push(result.value);
          this.chunksSeen++;
          controller.enqueue(result.value);
          if (drop != null && response.chunks.length >= drop.n) dropNow = true;
          this.notify();
        },
        cancel: reason => {
          finish('cancelled');
          return reader.cancel(reason);
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** Reads (and discards) from a stream until it errors; returns that error (or undefined). */
  async transportError(reader, timeoutMs) {
    let timer;
    const timeout = new Promise(resolve => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      while (true) {
        const result = await Promise.race([reader.read(), timeout]);
        if (result === 'timeout' || result.done) return undefined;
      }
    } catch (error) {
      return error;
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- the Chat ----------------------------------------------------------------------------

  createChat(messages) {
    const { scenario } = this;
    const clientTools = scenario.clientTools ?? {};
    const chat = new Chat({
      id: this.chatId,
      messages,
      transport: this.makeTransport(),
      onError: error => this.record('error', { error: describeError(error) }),
      onFinish: ({ message, isAbort, isDisconnect, isError, finishReason }) =>
        this.record('finish', {
          messageId: message?.id,
          isAbort,
          isDisconnect,
          isError,
          finishReason: finishReason ?? null,
          message: structuredClone(message),
        }),
      onData: part => this.record('data', { part }),
      onToolCall: ({ toolCall }) => {
        this.record('toolCall', { toolCall });
        const spec = clientTools[toolCall.toolName];
        if (spec == null) return;
        const answer = () => {
          const base = { tool: toolCall.toolName, toolCallId: toolCall.toolCallId };
          const args =
            spec.errorText != null
              ? { ...base, state: 'output-error', errorText: spec.errorText }
              : { ...base, output: spec.output ?? null };
          this.record('toolOutput', { ...args, auto: true });
          // not awaited inside onToolCall (as documented); tracked for "wait"/"settle".
          this.track(chat.addToolOutput(args), 'addToolOutput(auto)');
        };
        if (spec.delayMs) setTimeout(answer, spec.delayMs);
        else answer();
      },
      ...(this.autoPredicate ? { sendAutomaticallyWhen: this.autoPredicate } : {}),
    });
    chat['~registerStatusCallback']?.(() => this.record('status', { status: chat.status }));
    return chat;
  }

  messagesUrl() {
    const template = this.scenario.messagesUrl;
    if (template != null) {
      return new URL(template.replaceAll('{id}', encodeURIComponent(this.chatId)), this.api).toString();
    }
    const url = new URL(this.api);
    url.pathname = `${url.pathname.replace(/\/$/, '')}/${encodeURIComponent(this.chatId)}/messages`;
    return url.toString();
  }

  async loadMessages() {
    const url = this.messagesUrl();
    const response = await fetch(url, { signal: AbortSignal.timeout(this.stepTimeoutMs) });
    const text = await response.text();
    if (!response.ok) {
      throw new CheckFailed(`GET ${url} (stored messages) answered ${response.status}: ${text.slice(0, 300)}`);
    }
    const json = JSON.parse(text);
    const messages = Array.isArray(json) ? json : json?.messages;
    if (!Array.isArray(messages)) {
      throw new CheckFailed(`GET ${url} did not return a UIMessage[] or {messages: [...]}: ${text.slice(0, 300)}`);
    }
    return messages;
  }

  findToolPart(match = {}, defaultState) {
    const want = { state: defaultState, ...match };
    const messages = this.chat.messages;
    for (let m = messages.length - 1; m >= 0; m--) {
      const parts = messages[m].parts ?? [];
      for (let p = parts.length - 1; p >= 0; p--) {
        const part = parts[p];
        if (!isToolUIPart(part)) continue;
        if (want.state != null && part.state !== want.state) continue;
        if (want.toolName != null && getToolOrDynamicToolName(part) !== want.toolName) continue;
        if (want.toolCallId != null && part.toolCallId !== want.toolCallId) continue;
        if (want.approvalId != null && part.approval?.id !== want.approvalId) continue;
        return part;
      }
    }
    throw new CheckFailed(`no tool part matches ${JSON.stringify(want)}`);
  }

  // ---- steps -------------------------------------------------------------------------------

  async runAction(step, label, run) {
    this.lastActionEventIndex = this.events.length;
    this.chunksAtLastAction = this.chunksSeen;
    let promise;
    try {
      promise = Promise.resolve(run());
    } catch (error) {
      promise = Promise.reject(error);
    }
    if (step.wait === false) {
      this.track(promise, label);
      return;
    }
    const timeoutMs = step.timeoutMs ?? this.stepTimeoutMs;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new CheckFailed(`${label} did not finish within ${timeoutMs} ms (status ${this.chat.status})`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([promise, timeout]);
    } catch (error) {
      if (error instanceof CheckFailed || !step.allowThrow) throw error;
      this.record('stepError', { op: label, error: describeError(error) });
    } finally {
      clearTimeout(timer);
    }
  }

  requestOptions(step) {
    const options = {};
    if (step.body !== undefined) options.body = step.body;
    if (step.headers !== undefined) options.headers = step.headers;
    if (step.requestMetadata !== undefined) options.metadata = step.requestMetadata;
    return options;
  }

  async runStep(step, index) {
    const op = step?.op;
    this.record('step', { index, op });
    const timeoutMs = step.timeoutMs ?? this.stepTimeoutMs;
    switch (op) {
      case 'send': {
        let message;
        if (step.parts != null) {
          message = { parts: step.parts };
          if (step.id != null) message.id = step.id;
        } else if (step.text != null || step.files != null) {
          message = {};
          if (step.text != null) message.text = step.text;
          if (step.files != null) message.files = step.files;
        }
        if (message != null) {
          if (step.metadata !== undefined) message.metadata = step.metadata;
          if (step.messageId != null) message.messageId = step.messageId;
        }
        const options = this.requestOptions(step);
        return this.runAction(step, 'send', () =>
          this.chat.sendMessage(message, Object.keys(options).length ? options : undefined),
        );
      }
      case 'resume':
        return this.runAction(step, 'resume', () => this.chat.resumeStream(this.requestOptions(step)));
      case 'regenerate':
        return this.runAction(step, 'regenerate', () =>
          this.chat.regenerate({
            ...(step.messageId != null ? { messageId: step.messageId } : {}),
            ...this.requestOptions(step),
          }),
        );
      case 'stop':
        return this.runAction(step, 'stop', () => this.chat.stop());
      case 'addToolOutput': {
        return this.runAction(step, 'addToolOutput', () => {
          const part =
            step.toolCallId != null && step.match == null
              ? this.findToolPart({ toolCallId: step.toolCallId }, undefined)
              : this.findToolPart(step.match, 'input-available');
          const base = {
            tool: step.tool ?? getToolOrDynamicToolName(part),
            toolCallId: part.toolCallId,
          };
          const args =
            step.errorText != null
              ? { ...base, state: 'output-error', errorText: step.errorText }
              : { ...base, output: step.output ?? null };
          this.record('toolOutput', { ...args, auto: false });
          return this.chat.addToolOutput(args);
        });
      }
      case 'addToolApprovalResponse': {
        if (typeof step.approved !== 'boolean') {
          throw new UsageError('addToolApprovalResponse needs "approved": true|false');
        }
        return this.runAction(step, 'addToolApprovalResponse', () => {
          const id = step.id ?? this.findToolPart(step.match, 'approval-requested').approval.id;
          return this.chat.addToolApprovalResponse({
            id,
            approved: step.approved,
            ...(step.reason != null ? { reason: step.reason } : {}),
          });
        });
      }
      case 'newChat': {
        const old = this.chat;
        if (!step.keepOld) await old.dispose();
        const messages =
          step.messages ?? (step.loadMessages === false ? [] : await this.loadMessages());
        this.chat = this.createChat(messages);
        this.record('newChat', { messageCount: messages.length });
        return;
      }
      case 'dropAfterChunks': {
        if (!Number.isInteger(step.n) || step.n < 0) throw new UsageError('dropAfterChunks needs "n" >= 0');
        this.dropArm = { n: step.n, message: step.message };
        return;
      }
      case 'waitStatus': {
        const wanted = Array.isArray(step.status) ? step.status : [step.status];
        await this.waitUntil(() => wanted.includes(this.chat.status), timeoutMs, `status ${wanted.join('|')}`);
        return;
      }
      case 'waitChunks': {
        const target = this.chunksAtLastAction + (step.n ?? 1);
        await this.waitUntil(() => this.chunksSeen >= target, timeoutMs, `${step.n} chunks`);
        return;
      }
      case 'waitEvent': {
        const from = step.since === 'start' ? 0 : this.lastActionEventIndex;
        const count = step.count ?? 1;
        const matches = event =>
          event.type === step.type &&
          Object.entries(step.match ?? {}).every(([key, value]) => isDeepEqual(event[key], value));
        await this.waitUntil(
          () => this.events.slice(from).filter(matches).length >= count,
          timeoutMs,
          `${count} "${step.type}" event(s) matching ${JSON.stringify(step.match ?? {})}`,
        );
        return;
      }
      case 'wait':
        await this.waitUntil(() => this.pendingOps.size === 0, timeoutMs, 'background actions');
        return;
      case 'settle':
        await this.settle(step.quietMs ?? 150, timeoutMs);
        return;
      case 'sleep':
        await new Promise(resolve => setTimeout(resolve, step.ms ?? 0));
        return;
      case 'snapshot':
        this.record('snapshot', {
          label: step.label ?? null,
          status: this.chat.status,
          error: this.chat.error?.message ?? null,
          messages: structuredClone(this.chat.messages),
        });
        return;
      case 'clearError':
        this.chat.clearError();
        return;
      case 'http': {
        const url = new URL(step.url, this.api).toString();
        const method = (step.method ?? (step.body !== undefined ? 'POST' : 'GET')).toUpperCase();
        const headers = { ...(step.headers ?? {}) };
        if (step.body !== undefined) headers['content-type'] ??= 'application/json';
        const response = await fetch(url, {
          method,
          headers,
          body: step.body === undefined ? undefined : JSON.stringify(step.body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        const text = await response.text();
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* keep text */
        }
        this.record('http', { method, url, status: response.status, body });
        return;
      }
      default:
        throw new UsageError(`step #${index}: unknown op ${JSON.stringify(op)}`);
    }
  }

  isBusy() {
    return (
      this.pendingOps.size > 0 ||
      this.openStreams > 0 ||
      this.inflightFetches > 0 ||
      !['ready', 'error'].includes(this.chat.status)
    );
  }

  async settle(quietMs, timeoutMs) {
    let lastEvents = -1;
    let quietSince = 0;
    await this.waitUntil(
      () => {
        if (this.isBusy() || this.events.length !== lastEvents) {
          lastEvents = this.events.length;
          quietSince = performance.now();
          return false;
        }
        return performance.now() - quietSince >= quietMs;
      },
      timeoutMs,
      'the chat to settle',
    );
  }

  async run() {
    const { scenario } = this;
    if (!Array.isArray(scenario.steps)) throw new UsageError('scenario.steps must be a list');
    const initial = scenario.loadMessages ? await this.loadMessages() : (scenario.initialMessages ?? []);
    this.chat = this.createChat(initial);
    for (const [index, step] of scenario.steps.entries()) {
      await this.runStep(step, index);
    }
    if (scenario.settle !== false) await this.settle(150, this.stepTimeoutMs);
  }

  output() {
    const chat = this.chat;
    return {
      chatId: this.chatId,
      status: chat?.status ?? null,
      error: chat?.error?.message ?? null,
      errorDetail: describeError(chat?.error),
      messages: chat?.messages ?? [],
      events: this.events,
      chunksSeen: this.chunksSeen,
      responses: this.responses.map(({ chunks, ...rest }) => ({
        ...rest,
        chunkCount: chunks.length,
        chunks,
      })),
      requests: this.requests,
    };
  }
}

function makeAutoPredicate(auto) {
  if (auto == null || auto === false) return undefined;
  const any = ['toolCalls', ...(lastAssistantMessageIsCompleteWithApprovalResponses ? ['approvals'] : [])];
  const names = auto === 'any' ? any : Array.isArray(auto) ? auto : [auto];
  const predicates = names.map(name => {
    if (name === 'toolCalls') return lastAssistantMessageIsCompleteWithToolCalls;
    if (name === 'approvals') {
      if (lastAssistantMessageIsCompleteWithApprovalResponses == null) {
        throw new UsageError(`ai ${clientLevel} has no tool approvals`);
      }
      return lastAssistantMessageIsCompleteWithApprovalResponses;
    }
    throw new UsageError(`scenario.auto: unknown ${JSON.stringify(name)} (toolCalls | approvals | any)`);
  });
  return options => predicates.some(predicate => predicate(options));
}

function isDeepEqual(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

runMain(async () => {
  const args = parseArgs(process.argv.slice(2));
  if (args.scenario == null) throw new UsageError('--scenario PATH_OR_JSON is required');
  const scenario = await readJsonArg(args.scenario);
  if (scenario == null || typeof scenario !== 'object' || Array.isArray(scenario)) {
    throw new UsageError('the scenario must be a JSON object');
  }
  const harness = new Harness(scenario);
  process.on('unhandledRejection', error =>
    harness.record('unhandledRejection', { error: describeError(error) }),
  );
  const timeoutMs = scenario.timeoutMs ?? 60000;
  let timer;
  const overall = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new CheckFailed(`scenario did not finish within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([harness.run(), overall]);
  } catch (error) {
    const partial = { ...harness.output(), ok: false };
    if (error instanceof CheckFailed) throw new CheckFailed(error.message, partial);
    if (error instanceof UsageError) throw error;
    throw new CheckFailed(`harness error: ${error?.stack ?? error}`, partial);
  } finally {
    clearTimeout(timer);
  }
  return { ok: true, ...harness.output() };
});
