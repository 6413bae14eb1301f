#!/usr/bin/env node
// Browser scenarios for the demo, driven with playwright-core and a system Chromium.
//
//   node e2e/run.mjs <scenario> --base-url http://127.0.0.1:3000 --chromium /usr/bin/chromium \
//       [--transport sse|ws|auto] [--screenshot path.png] [--timeout-ms 60000]
//
// --transport opens every chat with `?transport=…` (the page's transport switch); without it
// the page uses its default (SSE).
//
// Prints one JSON object on stdout: {"scenario", "ok", "error"?, "checks": [...], ...}.
// Exit status 0 when every check passed, 1 when one failed, 2 on bad usage.
// tests/test_browser_demo.py runs it against a real bridge and `next start`.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const LONG_PROMPT = 'Please write a long answer about resumable streams.';
const TRANSPORTS = ['sse', 'ws', 'auto'];

/** The transport the scenario asks for (--transport), null: the page's default. */
let transport = null;

/** `path` of the demo, with the `?transport=` of the run. */
function demoUrl(baseUrl, path) {
  return `${baseUrl}${path}${transport ? `?transport=${transport}` : ''}`;
}

function chatUrl(baseUrl, chatId) {
  return demoUrl(baseUrl, `/chat/${encodeURIComponent(chatId)}`);
}

// ------------------------------------------------------------------------- plumbing

class CheckFailed extends Error {}

function createRun(scenario) {
  const result = { scenario, ok: false, checks: [] };
  return {
    result,
    check(name, condition, detail) {
      result.checks.push({ name, ok: Boolean(condition), ...(detail === undefined ? {} : { detail }) });
      if (!condition) throw new CheckFailed(`${name}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
    },
    note(key, value) {
      result[key] = value;
    },
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function launch(executablePath) {
  // launch() (not launchPersistentContext) so that scenarios can open several isolated
  // contexts ("devices"). Playwright starts Chromium with a fresh temporary
  // --user-data-dir of its own and deletes it on close (it refuses that flag in `args`).
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 60_000,
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

async function newPage(browser, consoleLog, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...contextOptions });
  const page = await context.newPage();
  // What went over the wire, to check that the chosen transport is the one used.
  page.wire = { sockets: [], posts: [] };
  page.on('websocket', (socket) => page.wire.sockets.push(socket.url()));
  page.on('request', (request) => {
    if (request.method() === 'POST') page.wire.posts.push(new URL(request.url()).pathname);
  });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      consoleLog.push(`[${message.type()}] ${message.text()}`.slice(0, 500));
    }
  });
  page.on('pageerror', (error) => consoleLog.push(`[pageerror] ${String(error).slice(0, 500)}`));
  return page;
}

/** Open `/`, follow the redirect to a fresh `/chat/<id>`, wait until the UI is live. */
async function openNewChat(page, baseUrl) {
  await page.goto(demoUrl(baseUrl, '/'), { waitUntil: 'domcontentloaded' });
  await page.waitForURL(/\/chat\/[^/?]+(\?|$)/);
  await waitForHydration(page);
  return decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
}

async function badgeLabels(page) {
  return page.evaluate(() => [...(window.__connectionLabels ?? [])]);
}

/**
 * The page uses the transport the run asked for: the switch shows it, and the turns went
 * over a socket (same origin: through the Next.js proxy) or over POST /api/chat.
 * `labels`: the badge texts seen (default: this document's; pass them for a page reloaded since).
 */
async function checkTransport(page, run, baseUrl, labels = null) {
  const want = transport ?? 'sse';
  const picked = await page.getByTestId('transport-picker').inputValue();
  run.check(`the transport switch shows "${want}"`, picked === want, picked);
  const chatSockets = page.wire.sockets.filter((url) => new URL(url).pathname === '/api/chat');
  const posts = page.wire.posts.filter((path) => path === '/api/chat' || path === '/api/chat/poll');
  run.note('wire', { sockets: chatSockets, chatPosts: posts });
  if (want === 'sse') {
    run.check('no WebSocket was opened', chatSockets.length === 0, chatSockets);
    run.check('the turn was a POST /api/chat', posts.includes('/api/chat'), posts);
    return;
  }
  const origin = new URL(baseUrl);
  run.check('a WebSocket to /api/chat of the page\'s own origin (the Next.js proxy) was opened',
    chatSockets.length > 0 && chatSockets.every((url) => new URL(url).host === origin.host), chatSockets);
  run.check('no turn went over HTTP (POST /api/chat, /api/chat/poll)', posts.length === 0, posts);
  if (want === 'auto') {
    const seen = labels ?? (await badgeLabels(page));
    run.note('badgeLabels', seen);
    run.check('the badge showed the live tier while streaming ("Streaming · WebSocket")',
      seen.includes('Streaming · WebSocket'), seen);
    const tier = await page.getAttribute('[data-testid="connection-state"]', 'data-tier');
    run.check('the badge names the tier (data-tier="websocket")', tier === 'websocket', tier);
  } else {
    run.check('the badge names no tier for a stock transport',
      (await page.getAttribute('[data-testid="connection-state"]', 'data-tier')) === null);
  }
}

async function waitForHydration(page) {
  await page.waitForFunction(() => window.__demoChat !== undefined, null, { timeout: 30_000 });
}

async function sendText(page, text) {
  const input = page.getByTestId('composer-input');
  await input.fill(text);
  await page.getByTestId('send-button').click();
}

/** The chat as the client holds it (window.__demoChat). */
async function clientState(page) {
  return page.evaluate(() => {
    const chat = window.__demoChat;
    return chat ? JSON.parse(JSON.stringify(chat)) : null;
  });
}

async function storedChat(baseUrl, chatId) {
  const response = await fetch(`${baseUrl}/api/chat/${encodeURIComponent(chatId)}/messages`);
  if (!response.ok) throw new Error(`GET messages: HTTP ${response.status}`);
  return response.json();
}

function textOf(message) {
  return (message?.parts ?? [])
    .filter((part) => part.type === 'text')
    .map((part) => part.text)
    .join('');
}

function assistants(messages) {
  return (messages ?? []).filter((message) => message.role === 'assistant');
}

/** Rendered text of every assistant message (what a reader sees). */
async function renderedAssistantTexts(page) {
  return page.$$eval('[data-testid="message"][data-role="assistant"]', (nodes) =>
    nodes.map((node) =>
      [...node.querySelectorAll('[data-testid="message-text"]')].map((el) => el.innerText).join('\n'),
    ),
  );
}

async function phases(page) {
  return page.evaluate(() => [...(window.__connectionPhases ?? [])]);
}

/** Length of the assistant text the client holds right now. */
async function streamedLength(page) {
  return page.evaluate(() => {
    const messages = window.__demoChat?.messages ?? [];
    const last = messages[messages.length - 1];
    if (!last || last.role !== 'assistant') return 0;
    return last.parts.filter((p) => p.type === 'text').reduce((n, p) => n + p.text.length, 0);
  });
}

async function waitForStreamedText(page, minChars, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const length = await streamedLength(page);
    const status = await page.getAttribute('[data-testid="chat"]', 'data-status');
    if (length >= minChars && status === 'streaming') return length;
    if (length >= minChars) throw new Error(`the answer was no longer streaming at ${length} chars`);
    await sleep(25);
  }
  throw new Error(`no streamed text of ${minChars} chars within ${timeoutMs} ms`);
}

/**
 * Wait until the bridge has no running generation for the chat and the page shows the
 * stored last assistant message in full, idle. Returns {stored, client}.
 */
async function waitForSettled(page, baseUrl, chatId, { timeoutMs = 60_000, requireUsage = true } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    const stored = await storedChat(baseUrl, chatId);
    const client = await clientState(page);
    const phase = await page.getAttribute('[data-testid="connection-state"]', 'data-state').catch(() => null);
    const storedLast = stored.messages[stored.messages.length - 1];
    const clientLast = client?.messages?.[client.messages.length - 1];
    last = {
      active: stored.activeGenerationId,
      status: client?.status,
      phase,
      storedLastId: storedLast?.id,
      clientLastId: clientLast?.id,
      storedChars: textOf(storedLast).length,
      clientChars: textOf(clientLast).length,
    };
    const settled =
      stored.activeGenerationId === null &&
      client?.status === 'ready' &&
      (phase === 'idle' || phase === 'stopped') &&
      storedLast?.role === 'assistant' &&
      clientLast?.id === storedLast.id &&
      textOf(clientLast) === textOf(storedLast) &&
      JSON.stringify(clientLast.parts.map((p) => p.state ?? null)) ===
        JSON.stringify(storedLast.parts.map((p) => p.state ?? null)) &&
      (!requireUsage || (await page.locator('[data-testid="message"][data-role="assistant"] [data-testid="usage"]').count()) > 0);
    if (settled) {
      await sleep(300); // let React paint the last update
      return { stored, client: await clientState(page) };
    }
    await sleep(100);
  }
  throw new Error(`the chat did not settle: ${JSON.stringify(last)}`);
}

/** An uninterrupted run of the long prompt in a fresh chat: the reference answer. */
async function referenceRun(browser, baseUrl, consoleLog) {
  const page = await newPage(browser, consoleLog);
  const chatId = await openNewChat(page, baseUrl);
  await sendText(page, LONG_PROMPT);
  const { stored } = await waitForSettled(page, baseUrl, chatId);
  const rendered = await renderedAssistantTexts(page);
  await page.context().close();
  return { chatId, text: textOf(assistants(stored.messages)[0]), rendered: rendered[0] };
}

/** A new chat answering the long prompt; once it streams, `text` is typed and `button` pressed. */
async function typeWhileAnswering(browser, baseUrl, consoleLog, text, button) {
  const page = await newPage(browser, consoleLog);
  const chatId = await openNewChat(page, baseUrl);
  await sendText(page, LONG_PROMPT);
  await waitForStreamedText(page, 200);
  await page.getByTestId('composer-input').fill(text);
  await page.getByTestId(button).click();
  return { page, chatId };
}

/** Record the page's calls of the stop endpoint (it must never be called on unload). */
function watchStopCalls(page) {
  const calls = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && /\/api\/chat\/[^/]+\/stop$/.test(new URL(request.url()).pathname)) {
      calls.push(request.url());
    }
  });
  return calls;
}

/** GET the resume endpoint; read a replay for up to 3 s (a live stream would not end). */
async function resumeProbe(baseUrl, chatId) {
  const response = await fetch(`${baseUrl}/api/chat/${encodeURIComponent(chatId)}/stream`);
  if (response.status !== 200 || !response.body) {
    await response.body?.cancel();
    return { status: response.status, ended: true, aborted: false };
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let ended = false;
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const next = await Promise.race([reader.read(), sleep(deadline - Date.now()).then(() => null)]);
    if (next === null) break;
    if (next.done) {
      ended = true;
      break;
    }
    text += decoder.decode(next.value, { stream: true });
  }
  await reader.cancel().catch(() => {});
  return { status: 200, ended, aborted: text.includes('"type":"abort"') || text.includes('"type": "abort"') };
}

// ------------------------------------------------------------------------- scenarios

const scenarios = {
  /** Send a message, see the streamed answer complete. */
  async send({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);
    run.check('empty state shown for a new chat', await page.getByTestId('empty-state').isVisible());
    const models = await page.getByTestId('model-picker').evaluate((el) => (el.tagName === 'SELECT' ? el.value : el.textContent));
    run.note('model', models);
    await sendText(page, 'Hello from the browser test');
    await page.waitForSelector('[data-testid="message"][data-role="assistant"]');
    const { stored, client } = await waitForSettled(page, baseUrl, chatId);
    const seen = await phases(page);
    run.note('phases', seen);
    run.check('the answer streamed (badge showed "streaming")', seen.includes('streaming'), seen);
    run.check('one user and one assistant message', client.messages.length === 2 && assistants(client.messages).length === 1,
      client.messages.map((m) => m.role));
    const text = textOf(assistants(client.messages)[0]);
    run.check('the answer quotes the message', text.includes('Hello from the browser test'), text.slice(0, 200));
    run.check('client text equals stored text', text === textOf(assistants(stored.messages)[0]));
    const rendered = await renderedAssistantTexts(page);
    run.check('the answer is rendered as markdown (bold → <strong>)',
      (await page.locator('[data-testid="message-text"] strong').count()) > 0);
    run.check('reasoning is shown', (await page.getByTestId('reasoning').count()) > 0);
    run.check('token usage is shown', (await page.getByTestId('usage').count()) > 0, await page.getByTestId('usage').first().innerText());
    run.note('renderedText', rendered[0]);
    await checkTransport(page, run, baseUrl);
  },

  /** Reload in the middle of a long answer: it continues, complete, no duplicate. */
  async reload({ browser, baseUrl, run, consoleLog }) {
    const reference = await referenceRun(browser, baseUrl, consoleLog);
    run.check('reference answer is long', reference.text.length > 1500, reference.text.length);

    const page = await newPage(browser, consoleLog);
    const stopCalls = watchStopCalls(page);
    const chatId = await openNewChat(page, baseUrl);
    await sendText(page, LONG_PROMPT);
    const before = await waitForStreamedText(page, 300);
    run.note('charsBeforeReload', before);
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitForHydration(page);
    const afterReload = await streamedLength(page);
    run.note('charsRightAfterReload', afterReload);
    const { stored, client } = await waitForSettled(page, baseUrl, chatId);
    const seen = await phases(page);
    run.note('phasesAfterReload', seen);
    run.check('the reloaded page resumed the running answer', seen.includes('resumed'), seen);
    run.check('exactly one assistant message (client)', assistants(client.messages).length === 1, client.messages.map((m) => m.role));
    run.check('exactly one assistant message (stored)', assistants(stored.messages).length === 1, stored.messages.map((m) => m.role));
    const text = textOf(assistants(client.messages)[0]);
    run.check('answer text equals the uninterrupted run', text === reference.text,
      { got: text.length, want: reference.text.length });
    run.check('stored text equals the uninterrupted run', textOf(assistants(stored.messages)[0]) === reference.text);
    const rendered = await renderedAssistantTexts(page);
    run.check('exactly one assistant message (page)', rendered.length === 1, rendered.length);
    run.check('rendered answer equals the uninterrupted run', rendered[0] === reference.rendered,
      { got: rendered[0]?.length, want: reference.rendered.length });
    run.check('the reload did not call the stop endpoint', stopCalls.length === 0, stopCalls);
    run.check('the reloaded page kept its transport', (await clientState(page)).transport === (transport ?? 'sse'));
  },

  /** Two devices on one chat while it streams: both end with the same message. */
  async 'second-page'({ browser, baseUrl, run, consoleLog }) {
    const first = await newPage(browser, consoleLog);
    const firstStops = watchStopCalls(first);
    const chatId = await openNewChat(first, baseUrl);
    await sendText(first, LONG_PROMPT);
    await waitForStreamedText(first, 200);
    const second = await newPage(browser, consoleLog); // another context: another "device"
    const stopCalls = [firstStops, watchStopCalls(second)];
    await second.goto(chatUrl(baseUrl, chatId), { waitUntil: 'domcontentloaded' });
    await waitForHydration(second);
    const secondStartChars = await streamedLength(second);
    run.note('secondPageJoinedAtChars', secondStartChars);
    await second.waitForFunction(() => document.querySelector('[data-testid="chat"]')?.getAttribute('data-status') === 'streaming',
      null, { timeout: 15_000 });
    run.check('the second page streamed the answer live', true);
    const a = await waitForSettled(first, baseUrl, chatId);
    const b = await waitForSettled(second, baseUrl, chatId);
    const textA = textOf(assistants(a.client.messages)[0]);
    const textB = textOf(assistants(b.client.messages)[0]);
    run.check('one assistant message on each page',
      assistants(a.client.messages).length === 1 && assistants(b.client.messages).length === 1);
    run.check('same message id on both pages', assistants(a.client.messages)[0].id === assistants(b.client.messages)[0].id);
    run.check('same text on both pages', textA === textB, { a: textA.length, b: textB.length });
    run.check('same text as stored', textA === textOf(assistants(a.stored.messages)[0]));
    const [ra] = await renderedAssistantTexts(first);
    const [rb] = await renderedAssistantTexts(second);
    run.check('same rendering on both pages', ra === rb);
    run.check('the second page resumed', (await phases(second)).includes('resumed'), await phases(second));
    run.check('no page called the stop endpoint', stopCalls.every((calls) => calls.length === 0), stopCalls);
  },

  /** An idle page picks up an answer another device starts in the same chat. */
  async follow({ browser, baseUrl, run, consoleLog }) {
    const watcher = await newPage(browser, consoleLog);
    const chatId = await openNewChat(watcher, baseUrl);
    await sendText(watcher, 'Hello, first turn');
    await waitForSettled(watcher, baseUrl, chatId);

    const writer = await newPage(browser, consoleLog); // another "device"
    await writer.goto(chatUrl(baseUrl, chatId), { waitUntil: 'domcontentloaded' });
    await waitForHydration(writer);
    await waitForSettled(writer, baseUrl, chatId);
    await sendText(writer, LONG_PROMPT);
    const started = Date.now();
    await watcher.waitForFunction(() => window.__demoChat?.status === 'streaming', null, { timeout: 15_000 });
    run.note('msUntilWatcherStreams', Date.now() - started);
    // The page's periodic check rests while the live tail is connected: the tail told it.
    const tail = await watcher.evaluate(() => (window.__liveTail ? { ...window.__liveTail } : null));
    run.note('watcherLiveTail', tail);
    run.check('the watcher followed the turn because its live tail announced it',
      tail?.open === true && tail.followed >= 1, tail);
    const w = await waitForSettled(writer, baseUrl, chatId);
    const v = await waitForSettled(watcher, baseUrl, chatId);
    const ids = (state) => state.client.messages.map((m) => `${m.role}:${m.id}`);
    run.check('both pages hold the same four messages', JSON.stringify(ids(w)) === JSON.stringify(ids(v)) && ids(v).length === 4,
      { writer: ids(w), watcher: ids(v) });
    run.check('same last answer on both pages',
      textOf(w.client.messages.at(-1)) === textOf(v.client.messages.at(-1)) && textOf(v.client.messages.at(-1)).length > 1500);
    run.check('the watcher shows the writer\'s question',
      (await watcher.locator('[data-testid="message"][data-role="user"]').allInnerTexts()).some((t) => t.includes('long answer')));
  },

  /** Steer: text typed while the answer runs goes into it, where the model reads it. */
  async steer({ browser, baseUrl, run, consoleLog }) {
    const { page, chatId } = await typeWhileAnswering(browser, baseUrl, consoleLog, 'Now say it in one line', 'steer-button');
    const { stored, client } = await waitForSettled(page, baseUrl, chatId);
    const kinds = (message) => (message?.parts ?? []).map((part) => part.type);
    const clientLast = client.messages.at(-1);
    const storedLast = stored.messages.at(-1);
    run.note('parts', kinds(clientLast));
    run.check('one user and one assistant message', client.messages.length === 2,
      client.messages.map((m) => m.role));
    const at = kinds(clientLast).indexOf('steering-message');
    run.check('the answer holds the steering message, then a new step',
      at > 0 && kinds(clientLast)[at + 1] === 'step-start', kinds(clientLast));
    run.check('the steering message carries the typed text',
      clientLast.parts[at]?.parts?.[0]?.text === 'Now say it in one line', clientLast.parts[at]);
    run.check('the stored answer is the same', JSON.stringify(kinds(storedLast)) === JSON.stringify(kinds(clientLast)));
    const shown = await page.getByTestId('steering-message').allInnerTexts();
    run.check('the page shows it inside the answer', shown.length === 1 && shown[0].includes('one line'), shown);
    const outcome = page.getByTestId('steering-message').getByTestId('steering-outcome');
    await outcome.waitFor({ timeout: 30_000 });
    run.note('outcome', await outcome.innerText());
    run.check('it is marked delivered, at the step that read it',
      (await outcome.getAttribute('data-outcome')) === 'delivered' && /step \d+/.test(await outcome.innerText()));
    run.check('nothing is left pending', (await page.getByTestId('pending-message').count()) === 0);
    const chunks = await page.evaluate(() => window.__steeringOutcomeChunks ?? []);
    run.check('the outcome came in the answer (a data-steering-outcome chunk)',
      chunks.includes(clientLast.parts[at]?.id), chunks);
  },

  /** A steering message the answer never read (it was stopped first): "not delivered". */
  async 'steer-stopped'({ browser, baseUrl, run, consoleLog }) {
    const { page } = await typeWhileAnswering(browser, baseUrl, consoleLog, 'Never read', 'steer-button');
    const pending = page.locator('[data-testid="pending-message"][data-kind="steer"]');
    await pending.waitFor({ timeout: 10_000 });
    run.check('the steer shows as queued first', (await pending.getAttribute('data-state')) === 'queued');
    await page.getByTestId('stop-button').click();
    await page.locator('[data-testid="pending-message"][data-state="not-delivered"]').waitFor({ timeout: 30_000 });
    run.note('pendingText', await pending.innerText());
    run.check('then not delivered, because the answer was stopped',
      (await pending.getAttribute('data-reason')) === 'aborted', await pending.getAttribute('data-reason'));
    run.check('it is not in the answer', (await page.getByTestId('steering-message').count()) === 0);
  },

  /** A message sent while an answer runs, queued as the next turn: shown queued, then run. */
  async queue({ browser, baseUrl, run, consoleLog }) {
    const { page, chatId } = await typeWhileAnswering(browser, baseUrl, consoleLog, 'And then this one', 'queue-button');
    const queued = page.locator('[data-testid="pending-message"][data-kind="queue"]');
    await queued.waitFor({ timeout: 10_000 });
    run.check('the message shows as queued while the answer runs',
      (await queued.getAttribute('data-state')) === 'queued' &&
        (await page.getAttribute('[data-testid="chat"]', 'data-status')) === 'streaming');
    const deadline = Date.now() + 60_000;
    let stored = await storedChat(baseUrl, chatId);
    while (stored.messages.length < 4 && Date.now() < deadline) {
      await sleep(200);
      stored = await storedChat(baseUrl, chatId);
    }
    const settled = await waitForSettled(page, baseUrl, chatId);
    const roles = settled.client.messages.map((m) => m.role);
    run.note('roles', roles);
    run.check('it ran as the next turn, after the first answer',
      JSON.stringify(roles) === JSON.stringify(['user', 'assistant', 'user', 'assistant']), roles);
    run.check('the next answer is to the queued message',
      textOf(settled.client.messages[3]).includes('And then this one'), textOf(settled.client.messages[3]).slice(0, 200));
    run.check('the first answer was not cut', textOf(settled.client.messages[1]).length > 1500);
    await page.locator('[data-testid="pending-message"]').waitFor({ state: 'detached', timeout: 10_000 });
    run.check('no longer shown as queued', true);
  },

  /**
   * The bridge is killed mid-answer and started again (tests/test_browser_demo.py does it
   * when this prints KILL-NOW, and answers on stdin): the page shows the recovery.
   */
  async recovering({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);
    await sendText(page, LONG_PROMPT);
    await waitForStreamedText(page, 200);
    process.stdout.write('KILL-NOW\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    const banner = page.getByTestId('recovering');
    await banner.waitFor({ timeout: 60_000 });
    run.note('bannerText', await banner.innerText());
    const { client } = await waitForSettled(page, baseUrl, chatId);
    const phasesSeen = await page.evaluate(() => [...(window.__recoveryPhases ?? [])]);
    run.note('recoveryPhases', phasesSeen);
    run.check('the page was told the answer was recovering, then resumed',
      phasesSeen[0] === 'recovering' && phasesSeen.includes('resumed'), phasesSeen);
    run.check('the answer ended complete', textOf(client.messages[1]).endsWith('without touching the client.'),
      textOf(client.messages[1]).slice(-120));
    await banner.waitFor({ state: 'detached', timeout: 15_000 });
    run.check('the banner goes once the answer goes on', true);
  },

  /** The bridge's auth on (a JWT set-up): sign in, chat, each user sees their own chats. */
  async auth({ browser, baseUrl, run, consoleLog }) {
    const alice = await newPage(browser, consoleLog);
    await alice.goto(`${baseUrl}/`, { waitUntil: 'domcontentloaded' });
    await alice.waitForURL(/\/login/);
    run.check('a page asks to sign in first', await alice.getByTestId('login-form').isVisible());
    const anonymous = await fetch(`${baseUrl}/api/chats`);
    run.check('the API refuses a caller with no session (401)', anonymous.status === 401, anonymous.status);
    await alice.getByTestId('login-name').fill('alice');
    await alice.getByTestId('login-submit').click();
    await alice.waitForURL(/\/chat\/[^/?]+$/);
    await waitForHydration(alice);
    const chatId = decodeURIComponent(new URL(alice.url()).pathname.split('/').pop());
    run.note('chatId', chatId);
    run.check('the sidebar names the user', (await alice.getByTestId('user-name').innerText()) === 'alice');
    await sendText(alice, 'Hello as alice');
    await alice.locator('[data-testid="message"][data-role="assistant"] [data-testid="usage"]').waitFor({ timeout: 60_000 });
    await alice.waitForSelector('[data-testid="chat"][data-status="ready"]');
    const answer = (await renderedAssistantTexts(alice))[0] ?? '';
    run.check('the answer came through the signed-in session', answer.includes('Hello as alice'), answer.slice(0, 200));
    // The chat list is alice's, from the page's own session (the cookie goes along).
    const chats = await alice.evaluate(async () => (await (await fetch('/api/chats')).json()).chats.map((c) => c.id));
    run.note('aliceChats', chats);
    await alice.reload({ waitUntil: 'domcontentloaded' });
    run.check('after a reload the history is rendered on the server for her',
      (await alice.locator('[data-testid="message"][data-role="user"]').innerText()).includes('Hello as alice'));

    const bob = await newPage(browser, consoleLog);
    await bob.goto(`${baseUrl}/login`, { waitUntil: 'domcontentloaded' });
    await bob.getByTestId('login-name').fill('bob');
    await bob.getByTestId('login-submit').click();
    await bob.waitForURL(/\/chat\//);
    await bob.goto(`${baseUrl}/chat/${encodeURIComponent(chatId)}`, { waitUntil: 'domcontentloaded' });
    await waitForHydration(bob);
    const bobText = await bob.locator('body').innerText();
    run.note('bobSeesAlicesText', bobText.includes('Hello as alice'));
    run.check('another user cannot read her chat', !bobText.includes('Hello as alice'));
    const bobChats = await bob.evaluate(async () => (await (await fetch('/api/chats')).json()).chats.map((c) => c.id));
    run.check('nor find it in his list', !bobChats.includes(chatId), bobChats);

    await alice.getByTestId('sign-out').click();
    await alice.waitForURL(/\/login/);
    run.check('signing out goes back to the sign-in page', await alice.getByTestId('login-form').isVisible());
  },

  /** Copy, regenerate, edit and resend. */
  async actions({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseUrl });
    const chatId = await openNewChat(page, baseUrl);
    await sendText(page, 'Hello actions');
    const first = await waitForSettled(page, baseUrl, chatId);
    const answer = page.locator('[data-testid="message"][data-role="assistant"]');
    await answer.getByTestId('copy-message').click();
    await answer.getByTestId('copy-message').getByText('Copied').waitFor({ timeout: 5_000 });
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    run.check('Copy puts the answer\'s text on the clipboard',
      copied === textOf(first.stored.messages[1]), copied.slice(0, 120));

    const firstAnswerId = first.stored.messages[1].id;
    await answer.getByTestId('regenerate-message').click();
    let stored = first.stored;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(150)) {
      stored = await storedChat(baseUrl, chatId);
      if (stored.messages[1]?.id !== firstAnswerId && stored.activeGenerationId === null) break;
    }
    const regenerated = await waitForSettled(page, baseUrl, chatId);
    run.check('Regenerate replaces the answer (a new one, the same question)',
      regenerated.stored.messages.length === 2 && regenerated.stored.messages[1].id !== firstAnswerId &&
        textOf(regenerated.stored.messages[1]).includes('Hello actions'),
      regenerated.stored.messages.map((m) => m.id));

    const question = page.locator('[data-testid="message"][data-role="user"]');
    const userId = await question.getAttribute('data-message-id');
    await question.getByTestId('edit-message').click();
    await page.getByTestId('edit-input').fill('Hello edited');
    await page.getByTestId('edit-save').click();
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(150)) {
      stored = await storedChat(baseUrl, chatId);
      if (textOf(stored.messages[0]) === 'Hello edited' && stored.activeGenerationId === null) break;
    }
    const edited = await waitForSettled(page, baseUrl, chatId);
    const messages = edited.stored.messages;
    run.note('afterEdit', messages.map((m) => [m.role, textOf(m).slice(0, 60)]));
    run.check('Edit replaces the question in place and answers it again',
      messages.length === 2 && messages[0].id === userId && textOf(messages[0]) === 'Hello edited' &&
        textOf(messages[1]).includes('Hello edited'));
    run.check('the page shows the edited chat', JSON.stringify(edited.client.messages.map((m) => m.id)) ===
      JSON.stringify(messages.map((m) => m.id)));
  },

  /** An image and a PDF attached: stored with the message, shown, read by the model. */
  async attachments({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);
    // A 1x1 PNG and a one-page PDF.
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
      'base64',
    );
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');
    await page.getByTestId('attach-input').setInputFiles([
      { name: 'dot.png', mimeType: 'image/png', buffer: png },
      { name: 'note.pdf', mimeType: 'application/pdf', buffer: pdf },
    ]);
    run.check('the composer lists both files', (await page.getByTestId('composer-file').count()) === 2);
    await sendText(page, 'What is in these files?');
    const { stored } = await waitForSettled(page, baseUrl, chatId);
    const files = stored.messages[0].parts.filter((part) => part.type === 'file');
    run.note('storedFiles', files.map((f) => [f.filename, f.mediaType, f.url.slice(0, 40)]));
    run.check('the stored question carries both files as data URLs',
      files.length === 2 && files[0].mediaType === 'image/png' && files[1].mediaType === 'application/pdf' &&
        files.every((f) => f.url.startsWith(`data:${f.mediaType};base64,`)));
    const answer = textOf(stored.messages[1]);
    run.check('the model was given both (it names them with their sizes)',
      answer.includes(`dot.png** (image/png, ${png.length} bytes)`) &&
        answer.includes(`note.pdf** (application/pdf, ${pdf.length} bytes)`), answer.slice(-300));
    const question = page.locator('[data-testid="message"][data-role="user"]');
    run.check('the question shows the image and the PDF',
      (await question.locator('img[data-testid="attachment"]').count()) === 1 &&
        (await question.locator('a[data-testid="attachment"]').innerText()) === 'note.pdf');
    run.check('the composer is empty again', (await page.getByTestId('composer-file').count()) === 0);
  },

  /** The system's dark mode: every colour switches. */
  async dark({ browser, baseUrl, run, consoleLog }) {
    const backgrounds = {};
    for (const colorScheme of ['light', 'dark']) {
      const page = await newPage(browser, consoleLog, { colorScheme });
      await openNewChat(page, baseUrl);
      backgrounds[colorScheme] = await page.evaluate(() => ({
        body: getComputedStyle(document.body).backgroundColor,
        sidebar: getComputedStyle(document.querySelector('[data-testid="sidebar"]')).backgroundColor,
        text: getComputedStyle(document.body).color,
      }));
      await page.context().close();
    }
    run.note('backgrounds', backgrounds);
    run.check('light: a light page', backgrounds.light.body === 'rgb(247, 247, 248)', backgrounds.light);
    run.check('dark: a dark page with light text',
      backgrounds.dark.body === 'rgb(18, 18, 22)' && backgrounds.dark.text === 'rgb(232, 232, 238)', backgrounds.dark);
    run.check('the sidebar switches too', backgrounds.dark.sidebar !== backgrounds.light.sidebar, backgrounds);
  },

  /** Stop: the bridge stops the generation; the partial answer survives a reload. */
  async stop({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);
    const stopResponses = [];
    page.on('response', async (response) => {
      if (response.request().method() === 'POST' && response.url().endsWith('/stop')) {
        stopResponses.push({ status: response.status(), body: await response.json().catch(() => null) });
      }
    });
    await sendText(page, LONG_PROMPT);
    await waitForStreamedText(page, 250);
    await page.getByTestId('stop-button').click();
    await page.waitForSelector('[data-testid="connection-state"][data-state="stopped"]', { timeout: 20_000 });
    run.note('stopResponses', stopResponses);
    run.check('the stop endpoint was called once', stopResponses.length === 1, stopResponses);
    run.check('the bridge reports the generation stopped', stopResponses[0]?.body?.stopped === true, stopResponses[0]);

    // Nothing runs on the bridge any more. A resume right after the stop may still replay
    // the stopped generation (the bridge's short resume grace period), but that replay must
    // be finished (it ends with `abort`), not live; then resume answers 204.
    const first = await resumeProbe(baseUrl, chatId);
    run.note('resumeRightAfterStop', { status: first.status, ended: first.ended, aborted: first.aborted });
    run.check('a resume right after the stop is 204 or a finished replay ending in abort',
      first.status === 204 || (first.status === 200 && first.ended && first.aborted), first);
    const started = Date.now();
    let status = first.status;
    while (status !== 204 && Date.now() - started < 20_000) {
      await sleep(250);
      status = (await resumeProbe(baseUrl, chatId)).status;
    }
    run.note('resumeStatusAfterStop', status);
    run.note('msUntilResume204', Date.now() - started);
    run.check('GET /api/chat/{id}/stream answers 204 after the stop', status === 204, status);

    const { stored, client } = await waitForSettled(page, baseUrl, chatId, { requireUsage: false });
    const partial = textOf(assistants(client.messages)[0]);
    run.note('partialChars', partial.length);
    run.check('a partial answer is kept', partial.length >= 250, partial.length);
    run.check('the partial answer is shorter than a full one', partial.length < 1500, partial.length);
    run.check('client partial equals stored partial', partial === textOf(assistants(stored.messages)[0]));
    const renderedBefore = await renderedAssistantTexts(page);
    await sleep(1000);
    run.check('nothing streams after the stop', (await streamedLength(page)) === partial.length);

    const labelsBeforeReload = await badgeLabels(page);
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitForHydration(page);
    const after = await waitForSettled(page, baseUrl, chatId, { requireUsage: false });
    const partialAfter = textOf(assistants(after.client.messages)[0]);
    run.check('after a reload the partial answer is still there', partialAfter === partial,
      { before: partial.length, after: partialAfter.length });
    run.check('one assistant message after the reload', assistants(after.client.messages).length === 1);
    const renderedAfter = await renderedAssistantTexts(page);
    run.check('same rendering after the reload', renderedAfter.length === 1 && renderedAfter[0] === renderedBefore[0]);
    await checkTransport(page, run, baseUrl, labelsBeforeReload);
  },

  /** Approve one tool call, deny another; results show and survive a reload. */
  async tools({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);

    await sendText(page, 'Please delete notes.txt');
    const firstTool = page.locator('[data-testid="tool-part"][data-tool-name="delete_file"]').first();
    await firstTool.locator('[data-testid="approve-button"]').waitFor({ timeout: 30_000 });
    run.check('the delete_file call asks for approval', (await firstTool.getAttribute('data-state')) === 'approval-requested');
    run.check('the tool input is shown', (await firstTool.getByTestId('tool-input').innerText()).includes('notes.txt'));
    await firstTool.getByTestId('approve-button').click();
    await page.waitForSelector('[data-testid="tool-part"][data-state="output-available"] [data-testid="tool-output"]', { timeout: 30_000 });
    const first = await waitForSettled(page, baseUrl, chatId);
    const approvedOutput = await page.locator('[data-testid="tool-part"][data-state="output-available"] [data-testid="tool-output"]').first().innerText();
    run.note('approvedOutput', approvedOutput);
    run.check('the approved call ran and its output is shown', approvedOutput.length > 0);
    run.check('the model answered after the tool', textOf(assistants(first.client.messages).at(-1)).length > 0);

    await sendText(page, 'Now delete draft.md as well');
    const secondTool = page.locator('[data-testid="tool-part"][data-state="approval-requested"]');
    await secondTool.locator('[data-testid="deny-button"]').waitFor({ timeout: 30_000 });
    await secondTool.getByTestId('deny-button').click();
    await page.waitForSelector('[data-testid="tool-part"][data-state="output-denied"]', { timeout: 30_000 });
    const second = await waitForSettled(page, baseUrl, chatId);
    run.check('the denied call shows as denied', (await page.getByTestId('tool-denied').count()) === 1);
    run.check('the model answered after the denial', textOf(assistants(second.client.messages).at(-1)).length > 0);

    const toolStates = (messages) =>
      messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool-delete_file' || p.type === 'dynamic-tool').map((p) => p.state));
    run.note('storedToolStates', toolStates(second.stored.messages));
    run.check('stored: one approved result and one denial',
      JSON.stringify(toolStates(second.stored.messages)) === JSON.stringify(['output-available', 'output-denied']),
      toolStates(second.stored.messages));

    const labelsBeforeReload = await badgeLabels(page);
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitForHydration(page);
    await waitForSettled(page, baseUrl, chatId);
    const statesAfter = await page.$$eval('[data-testid="tool-part"]', (nodes) => nodes.map((n) => n.getAttribute('data-state')));
    run.check('after a reload: the output and the denial are still shown',
      JSON.stringify(statesAfter) === JSON.stringify(['output-available', 'output-denied']), statesAfter);
    run.check('after a reload: the approved output is the same',
      (await page.locator('[data-testid="tool-part"][data-state="output-available"] [data-testid="tool-output"]').first().innerText()) === approvedOutput);
    run.check('no approval buttons left', (await page.getByTestId('approve-button').count()) === 0);
    await checkTransport(page, run, baseUrl, labelsBeforeReload);
  },

  /** The "drop connection" control: the answer recovers without a reload. */
  async drop({ browser, baseUrl, run, consoleLog }) {
    const reference = await referenceRun(browser, baseUrl, consoleLog);
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);
    await page.evaluate(() => {
      window.__noReloadMarker = 'still the same document';
    });
    await sendText(page, LONG_PROMPT);
    await waitForStreamedText(page, 300);
    await page.getByTestId('drop-connection').click();
    const { stored, client } = await waitForSettled(page, baseUrl, chatId);
    const seen = await phases(page);
    run.note('phases', seen);
    run.check('no page reload happened', (await page.evaluate(() => window.__noReloadMarker)) === 'still the same document');
    const dropAt = seen.indexOf('reconnecting');
    run.check('the badge showed "reconnecting" after the drop', dropAt !== -1, seen);
    run.check('then "resumed"', seen.indexOf('resumed', dropAt) !== -1, seen);
    run.check('exactly one assistant message', assistants(client.messages).length === 1);
    const text = textOf(assistants(client.messages)[0]);
    run.check('answer text equals the uninterrupted run', text === reference.text, { got: text.length, want: reference.text.length });
    run.check('stored text equals the uninterrupted run', textOf(assistants(stored.messages)[0]) === reference.text);
    const rendered = await renderedAssistantTexts(page);
    run.check('rendered answer equals the uninterrupted run', rendered.length === 1 && rendered[0] === reference.rendered);
    run.check('no error banner', (await page.getByTestId('error-banner').count()) === 0);
    await checkTransport(page, run, baseUrl);
  },

  /**
   * Leaving a chat mid-answer (another chat in the sidebar) does not stop its answer: only
   * Stop does. (The stock WebSocketChatTransport sends `abort` when a chat unmounts; the page
   * keeps that frame to itself.)
   */
  async leave({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    const stopCalls = watchStopCalls(page);
    const chatId = await openNewChat(page, baseUrl);
    await sendText(page, LONG_PROMPT);
    const left = await waitForStreamedText(page, 300);
    run.note('charsWhenLeaving', left);
    await page.getByTestId('new-chat').click();
    await page.waitForFunction((id) => window.__demoChat && window.__demoChat.id !== id, chatId, { timeout: 15_000 });
    const started = Date.now();
    let stored = await storedChat(baseUrl, chatId);
    while (stored.activeGenerationId !== null && Date.now() - started < 60_000) {
      await sleep(200);
      stored = await storedChat(baseUrl, chatId);
    }
    const text = textOf(assistants(stored.messages)[0]);
    run.note('storedChars', text.length);
    run.check('the answer ran to its end on the bridge', stored.activeGenerationId === null && text.length > 1500,
      { active: stored.activeGenerationId, chars: text.length });
    run.check('leaving did not call the stop endpoint', stopCalls.length === 0, stopCalls);

    await page.goto(chatUrl(baseUrl, chatId), { waitUntil: 'domcontentloaded' });
    await waitForHydration(page);
    const { client } = await waitForSettled(page, baseUrl, chatId);
    run.check('coming back shows the whole answer', textOf(assistants(client.messages)[0]) === text);
  },

  /** The transport switch: kept in the URL and in localStorage, and really used. */
  async switch({ browser, baseUrl, run, consoleLog }) {
    transport = null; // start from the page's default
    const page = await newPage(browser, consoleLog);
    const picker = page.getByTestId('transport-picker');
    const badge = page.getByTestId('connection-state');
    const firstId = await openNewChat(page, baseUrl);
    run.check('a new browser starts on SSE', (await picker.inputValue()) === 'sse');
    run.check('no tier shown for a stock transport', (await badge.getAttribute('data-tier')) === null);

    await picker.selectOption('auto');
    await page.waitForFunction(() => window.__demoChat?.transport === 'auto', null, { timeout: 10_000 });
    run.check('the choice is in the URL', new URL(page.url()).searchParams.get('transport') === 'auto', page.url());
    run.check('the choice is in localStorage',
      (await page.evaluate(() => localStorage.getItem('aisdk-bridge-demo:transport'))) === 'auto');
    run.check('the badge names the tier before anything is sent',
      (await badge.getAttribute('data-tier')) === 'websocket' && (await badgeLabels(page)).includes('Connected · WebSocket'),
      await badgeLabels(page));

    await sendText(page, 'Hello over the switch');
    await waitForSettled(page, baseUrl, firstId);
    transport = 'auto';
    await checkTransport(page, run, baseUrl);

    // Another chat in this browser keeps the choice (localStorage) and shows it in the URL.
    await page.getByTestId('new-chat').click();
    await page.waitForFunction((id) => window.__demoChat && window.__demoChat.id !== id, firstId, { timeout: 15_000 });
    await page.waitForFunction(() => new URL(location.href).searchParams.get('transport') === 'auto', null, { timeout: 10_000 });
    run.check('a new chat keeps "auto"', (await picker.inputValue()) === 'auto');
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitForHydration(page);
    run.check('a reload keeps "auto"', (await picker.inputValue()) === 'auto' && (await clientState(page)).transport === 'auto');

    // And back: SSE again, over POST /api/chat.
    const secondId = (await clientState(page)).id;
    await picker.selectOption('sse');
    await page.waitForFunction(() => window.__demoChat?.transport === 'sse', null, { timeout: 10_000 });
    run.check('the URL follows the switch', new URL(page.url()).searchParams.get('transport') === 'sse', page.url());
    page.wire.sockets.length = 0;
    page.wire.posts.length = 0;
    await sendText(page, 'Hello over SSE again');
    const { client } = await waitForSettled(page, baseUrl, secondId);
    run.check('the answer came', textOf(assistants(client.messages)[0]).includes('Hello over SSE again'));
    transport = 'sse';
    await checkTransport(page, run, baseUrl);
  },

  /**
   * A bridge whose model has provider tools (the provider-tools tests of
   * tests/test_browser_demo.py): the
   * answer shows a search card (query, sources) or a collapsed card per other provider tool,
   * never an ordinary tool part, and after a reload the same cards come back from the stored
   * chat. Notes what they showed (`cardsLive`, `cardsAfterReload`, `openedCards`); saves the
   * reloaded page with --screenshot.
   */
  async 'provider-tools'({ browser, baseUrl, run, consoleLog, args }) {
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);
    await sendText(page, 'What is the weather in Paris today?');
    const { stored } = await waitForSettled(page, baseUrl, chatId);
    const providerParts = assistants(stored.messages)
      .flatMap((message) => message.parts)
      .filter((part) => part.type.startsWith('tool-') && part.providerExecuted === true);
    run.note('storedProviderParts', providerParts);
    run.check('the stored answer has provider-executed tool parts, all done',
      providerParts.length > 0 && providerParts.every((part) => part.state === 'output-available'), providerParts);
    const cards = () =>
      page.evaluate(() => ({
        search: [...document.querySelectorAll('[data-testid="search-card"]')].map((node) => ({
          state: node.getAttribute('data-state'),
          query: node.querySelector('[data-testid="search-query"]')?.textContent ?? null,
          links: [...node.querySelectorAll('a[data-testid="search-source"]')].map((a) => ({
            href: a.getAttribute('href'),
            text: a.innerText.split('\n').map((line) => line.trim()).filter(Boolean),
          })),
        })),
        other: [...document.querySelectorAll('details[data-testid="provider-tool"]')].map((node) => ({
          name: node.getAttribute('data-tool-name'),
          state: node.getAttribute('data-state'),
          open: node.open,
        })),
      }));
    const live = await cards();
    run.note('cardsLive', live);
    run.check('one card per provider tool part', live.search.length + live.other.length === providerParts.length, live);
    run.check('no provider tool is shown as an ordinary tool part',
      (await page.locator('[data-testid="tool-part"]').count()) === 0);
    // Open the collapsed cards: their input and output are there.
    const summaries = page.locator('details[data-testid="provider-tool"] > summary');
    for (let index = 0; index < (await summaries.count()); index += 1) await summaries.nth(index).click();
    run.note('openedCards', await page.$$eval('details[data-testid="provider-tool"]', (nodes) =>
      nodes.map((node) => ({
        open: node.open,
        input: node.querySelector('[data-testid="provider-tool-input"]')?.innerText ?? null,
        output: node.querySelector('[data-testid="provider-tool-output"]')?.innerText ?? null,
      }))));
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitForHydration(page);
    await page.waitForSelector('[data-testid="search-card"], [data-testid="provider-tool"]', { timeout: 30_000 });
    const reloaded = await cards();
    run.note('cardsAfterReload', reloaded);
    run.check('the cards are the same after a reload', JSON.stringify(reloaded) === JSON.stringify(live),
      { live, reloaded });
    if (args.screenshot) {
      mkdirSync(dirname(args.screenshot), { recursive: true });
      await page.screenshot({ path: args.screenshot, fullPage: false, animations: 'disabled' });
    }
  },

  /** A chat with reasoning, sources, a tool approval and usage, saved as a screenshot. */
  async screenshot({ browser, baseUrl, run, consoleLog, args }) {
    const path = args.screenshot;
    if (!path) throw new Error('--screenshot is required');
    const page = await newPage(browser, consoleLog);
    const chatId = await openNewChat(page, baseUrl);
    await sendText(page, 'What are resumable streams? Please cite sources.');
    await waitForSettled(page, baseUrl, chatId);
    run.check('sources are shown', (await page.getByTestId('sources').count()) > 0);
    await sendText(page, 'Please delete notes.txt');
    const tool = page.locator('[data-testid="tool-part"][data-state="approval-requested"]');
    await tool.getByTestId('approve-button').waitFor({ timeout: 30_000 });
    await tool.getByTestId('approve-button').click();
    await waitForSettled(page, baseUrl, chatId);
    // The sidebar refreshes its list after a finish; wait for this chat's title to show.
    const item = page.locator(`[data-testid="chat-item"][data-chat-id="${chatId}"]`);
    await page
      .waitForFunction((el) => el && !el.textContent.startsWith('New chat'), await item.elementHandle(), { timeout: 5000 })
      .catch(() => {});
    run.note('sidebarTitle', await item.locator('.chat-item-title').innerText());
    await page.getByTestId('composer-input').fill('Write a long answer about resumable streams');
    await sleep(400);
    mkdirSync(dirname(path), { recursive: true });
    await page.screenshot({ path, fullPage: false, animations: 'disabled' });
    run.note('screenshot', path);
    run.check('screenshot written', true);
  },

  /** Delete from the sidebar: another chat, then the open one while it answers. */
  async delete({ browser, baseUrl, run, consoleLog }) {
    const page = await newPage(browser, consoleLog);
    const dialogs = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    const deletes = [];
    page.on('request', (request) => {
      if (request.method() === 'DELETE') deletes.push(new URL(request.url()).pathname);
    });
    const first = await openNewChat(page, baseUrl);
    await sendText(page, 'The first chat');
    await waitForSettled(page, baseUrl, first);
    const second = await openNewChat(page, baseUrl);
    await sendText(page, 'The second chat');
    await waitForSettled(page, baseUrl, second);
    const firstItem = page.locator(`[data-testid="chat-item"][data-chat-id="${first}"]`);
    await firstItem.waitFor({ timeout: 15_000 });

    await page.locator(`[data-testid="chat-delete"][data-chat-id="${first}"]`).click();
    await firstItem.waitFor({ state: 'detached', timeout: 15_000 });
    run.check('the delete asked for a confirmation first', dialogs.length === 1, dialogs);
    const gone = await storedChat(baseUrl, first);
    run.check('the other chat is gone from the bridge',
      gone.messages.length === 0 && gone.activeGenerationId === null, gone);
    run.check('the open chat stays open', page.url().includes(`/chat/${encodeURIComponent(second)}`), page.url());
    const kept = await storedChat(baseUrl, second);
    run.check('the open chat keeps its messages', kept.messages.length === 2, kept.messages.length);

    await sendText(page, LONG_PROMPT);
    await waitForStreamedText(page, 200);
    await page.locator(`[data-testid="chat-delete"][data-chat-id="${second}"]`).click();
    await page.waitForURL((url) => !url.pathname.endsWith(`/chat/${encodeURIComponent(second)}`), { timeout: 15_000 });
    const deleted = await storedChat(baseUrl, second);
    run.check('the open chat, deleted mid-answer, is gone from the bridge',
      deleted.messages.length === 0 && deleted.activeGenerationId === null, deleted);
    const resume = await resumeProbe(baseUrl, second);
    run.check('nothing of it is left to resume', resume.status === 204, resume);
    const listed = await page.evaluate(async () =>
      (await (await fetch('/api/chats', { cache: 'no-store' })).json()).chats.map((chat) => chat.id));
    run.check('neither chat is listed', !listed.includes(first) && !listed.includes(second), listed);
    run.check('the sidebar lists neither',
      (await page.locator(`[data-testid="chat-item"][data-chat-id="${first}"], [data-testid="chat-item"][data-chat-id="${second}"]`).count()) === 0);
    run.check('one DELETE per chat, through the demo\'s /api path',
      deletes.length === 2 && deletes[0] === `/api/chat/${encodeURIComponent(first)}`, deletes);
  },
};

// ------------------------------------------------------------------------- main

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'base-url': { type: 'string' },
      chromium: { type: 'string', default: process.env.CHROMIUM_PATH },
      screenshot: { type: 'string' },
      transport: { type: 'string' },
      'timeout-ms': { type: 'string', default: '120000' },
    },
  });
  const name = positionals[0];
  const badTransport = values.transport !== undefined && !TRANSPORTS.includes(values.transport);
  if (!name || !scenarios[name] || !values['base-url'] || !values.chromium || badTransport) {
    process.stderr.write(
      `usage: run.mjs <${Object.keys(scenarios).join('|')}> --base-url URL --chromium PATH ` +
        `[--transport ${TRANSPORTS.join('|')}] [--screenshot PNG]\n`,
    );
    process.exit(2);
  }
  transport = values.transport ?? null;
  const baseUrl = values['base-url'].replace(/\/+$/, '');
  const run = createRun(name);
  run.note('transport', transport ?? 'default');
  const consoleLog = [];
  const started = Date.now();
  let launched = null;
  const timeout = setTimeout(() => {
    run.result.error = `scenario timed out after ${values['timeout-ms']} ms`;
    run.result.console = consoleLog;
    process.stdout.write(`${JSON.stringify(run.result)}\n`);
    process.exit(1);
  }, Number(values['timeout-ms']));
  try {
    launched = await launch(values.chromium);
    run.note('browserVersion', launched.browser.version());
    await scenarios[name]({ browser: launched.browser, baseUrl, run, consoleLog, args: values });
    run.result.ok = true;
  } catch (error) {
    run.result.ok = false;
    run.result.error = error instanceof CheckFailed ? `check failed: ${error.message}` : String(error?.stack ?? error);
  } finally {
    clearTimeout(timeout);
    run.result.ms = Date.now() - started;
    run.result.console = consoleLog;
    await launched?.close();
  }
  process.stdout.write(`${JSON.stringify(run.result)}\n`);
  process.exit(run.result.ok ? 0 : 1);
}

main();
