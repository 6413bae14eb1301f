#!/usr/bin/env node
// The example app in Chromium: open `/`, land on `/chat/<id>`, send a message, wait for the
// answer to end, then reload and read the history the server rendered.
//
//   node e2e/chat.mjs --base-url http://127.0.0.1:3000 --chromium /usr/bin/chromium \
//       --playwright /path/to/node_modules/playwright-core --text "go" --expect "recovered"
//
// Prints one JSON object: {ok, error?, chatId, status, liveText, reloadedText, console}.
// tests/test_examples.py runs it against the app built on each supported Node version.

import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    'base-url': { type: 'string' },
    chromium: { type: 'string' },
    playwright: { type: 'string' },
    text: { type: 'string', default: 'hi' },
    expect: { type: 'string', default: '' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
});
const timeout = Number(args['timeout-ms']);
// playwright-core comes from the caller's install (the example itself does not need it).
const { chromium } = createRequire(`${args.playwright}/`)('./');

const result = { ok: false, console: [] };
const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
  timeout,
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') result.console.push(m.text().slice(0, 500));
  });
  page.on('pageerror', (e) => result.console.push(`[pageerror] ${String(e).slice(0, 500)}`));
  await page.goto(`${args['base-url']}/`, { waitUntil: 'domcontentloaded', timeout });
  await page.waitForURL(/\/chat\/[^/]+$/, { timeout });
  result.chatId = new URL(page.url()).pathname.split('/').pop();
  await page.waitForSelector('main[data-hydrated="true"]', { timeout });
  await page.getByPlaceholder('Say something').fill(args.text);
  await page.getByRole('button', { name: 'Send' }).click();
  // The answer has started, then ended: ready (answered) or error (the client gave up).
  await page.waitForSelector('p[data-role="assistant"]', { timeout });
  await page.waitForSelector('main[data-status="ready"], main[data-status="error"]', { timeout });
  result.status = await page.locator('main').getAttribute('data-status');
  result.liveText = await page.locator('p[data-role="assistant"] span').last().textContent();
  await page.reload({ waitUntil: 'domcontentloaded', timeout });
  result.reloadedText = await page.locator('p[data-role="assistant"] span').last().textContent();
  result.ok =
    result.status === 'ready' &&
    result.liveText.endsWith(args.expect) &&
    result.reloadedText === args.expect;
  if (!result.ok) result.error = 'the answer did not end as expected';
} catch (error) {
  result.error = String(error?.stack ?? error).slice(0, 2000);
} finally {
  await browser.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
