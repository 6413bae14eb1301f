#!/usr/bin/env node
// chat-run.mjs: drives the real `Chat` of @ai-sdk/react with ResilientChatTransport (built
// into ../dist) through a scenario read as JSON from stdin, and prints one JSON document:
// what the Chat ended with and what the transport did (tiers, reconnects).
//
// Scenario: { api, chatId?, options?: ResilientChatTransportOptions (JSON-able part),
//             initialMessages?: UIMessage[], auto?: "approvals", stepTimeoutMs?, steps }
// Steps:  {op:"send", text, wait?: false} · {op:"resume"} · {op:"stop"} ·
//         {op:"waitChunks", n} (chunks the Chat received since the start) ·
//         {op:"waitStatus", status: "ready" | [...]} · {op:"approve", approved: bool} ·
//         {op:"settle"} (until ready/error and idle) · {op:"sleep", ms}
// Exit 0 with {ok: true, ...}; on a failed step exit 1 with {ok: false, error, ...}.

import { Chat } from '@ai-sdk/react';
import { lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';
import { ResilientChatTransport } from '../dist/index.js';

const started = performance.now();
const events = [];
const record = (type, data = {}) => events.push({ t: Math.round(performance.now() - started), type, ...data });

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString('utf8'));
}

function until(predicate, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      clearInterval(interval);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const interval = setInterval(() => {
      if (!predicate()) return;
      clearTimeout(timer);
      clearInterval(interval);
      resolve();
    }, 10);
  });
}

async function main() {
  const scenario = await readStdin();
  let chunksSeen = 0;
  const pending = new Set();
  const transport = new ResilientChatTransport({
    api: scenario.api,
    ...scenario.options,
    onTierChange: (tier, previous, reason) => record('tier', { tier, previous, reason }),
    onReconnect: info => record('reconnect', info),
  });
  // Count what reaches the Chat: each stream the transport hands out passes through here.
  const count = stream =>
    stream &&
    stream.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          chunksSeen++;
          controller.enqueue(chunk);
        },
      }),
    );
  const wrapped = {
    get resumeStreamIsReplay() {
      return transport.resumeStreamIsReplay;
    },
    sendMessages: async options => count(await transport.sendMessages(options)),
    reconnectToStream: async options => count(await transport.reconnectToStream(options)),
    close: () => transport.close(),
  };
  const chat = new Chat({
    id: scenario.chatId,
    messages: scenario.initialMessages ?? [],
    transport: wrapped,
    onError: error => record('error', { message: error.message }),
    onFinish: ({ isAbort, isError, isDisconnect }) => record('finish', { isAbort, isError, isDisconnect }),
    ...(scenario.auto === 'approvals'
      ? { sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses }
      : {}),
  });
  const stepTimeout = scenario.stepTimeoutMs ?? 30000;
  const track = promise => {
    const tracked = promise
      .catch(error => record('stepError', { message: error?.message ?? String(error) }))
      .finally(() => pending.delete(tracked));
    pending.add(tracked);
    return tracked;
  };
  for (const step of scenario.steps) {
    record('step', { op: step.op });
    switch (step.op) {
      case 'send': {
        const promise = track(chat.sendMessage({ text: step.text }));
        if (step.wait !== false) await promise;
        break;
      }
      case 'resume':
        await track(chat.resumeStream());
        break;
      case 'stop':
        await chat.stop();
        break;
      case 'waitChunks':
        await until(() => chunksSeen >= step.n, stepTimeout, `${step.n} chunks`);
        break;
      case 'waitStatus': {
        const wanted = [step.status].flat();
        await until(() => wanted.includes(chat.status), stepTimeout, `status ${wanted}`);
        break;
      }
      case 'approve': {
        const part = chat.messages
          .flatMap(message => message.parts)
          .findLast(part => part.state === 'approval-requested');
        if (part == null) throw new Error('no tool part awaits approval');
        await track(chat.addToolApprovalResponse({ id: part.approval.id, approved: step.approved }));
        break;
      }
      case 'settle': {
        let quietSince = performance.now();
        let seen = -1;
        await until(
          () => {
            const busy = pending.size > 0 || !['ready', 'error'].includes(chat.status);
            if (busy || seen !== chunksSeen) {
              seen = chunksSeen;
              quietSince = performance.now();
              return false;
            }
            return performance.now() - quietSince > 200;
          },
          stepTimeout,
          'the chat to settle',
        );
        break;
      }
      case 'steer': {
        const result = await transport.steer(
          scenario.chatId,
          { id: step.id ?? 'steer-1', parts: [{ type: 'text', text: step.text }] },
          { mode: step.mode },
        );
        record('steer', result);
        break;
      }
      case 'sleep':
        await new Promise(resolve => setTimeout(resolve, step.ms));
        break;
      default:
        throw new Error(`unknown op ${step.op}`);
    }
  }
  const output = {
    ok: true,
    status: chat.status,
    error: chat.error?.message ?? null,
    tier: transport.tier,
    messages: chat.messages,
    chunksSeen,
    events,
  };
  transport.close();
  return output;
}

const overall = setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: 'scenario timed out', events })}\n`);
  process.exit(1);
}, 120000);

main().then(
  output => {
    clearTimeout(overall);
    process.stdout.write(`${JSON.stringify(output)}\n`, () => process.exit(0));
  },
  error => {
    clearTimeout(overall);
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(error?.stack ?? error), events })}\n`, () =>
      process.exit(1),
    );
  },
);
