import { chromium } from 'playwright-core';
const base = process.argv[2];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox','--disable-gpu'] });
const a = await (await browser.newContext()).newPage();
await a.goto(base + '/'); await a.waitForFunction(() => window.__demoChat);
const url = a.url();
const b = await (await browser.newContext()).newPage();
await b.goto(url); await b.waitForFunction(() => window.__demoChat);
await a.getByTestId('composer-input').fill('Write a long answer'); await a.getByTestId('send-button').click();
await a.waitForTimeout(300);
await b.getByTestId('composer-input').fill('Hello from B'); await b.getByTestId('send-button').click();
const t0=Date.now();
for (let i = 0; i < 12; i++) {
  await b.waitForTimeout(250);
  const al = await a.evaluate(() => window.__demoChat.messages.map(m => m.parts.filter(p=>p.type==='text').map(p=>p.text).join('').length)); console.log(Date.now()-t0, 'A', JSON.stringify(al));
  const s = await b.evaluate(() => ({ status: window.__demoChat.status, msgs: window.__demoChat.messages.map(m => m.role + ':' + m.parts.filter(p=>p.type==='text').map(p=>p.text).join('').length), phases: window.__connectionPhases }));
  const notice = await b.getByTestId('notice').innerText().catch(() => null);
  const err = await b.getByTestId('error-banner').innerText().catch(() => null);
  console.log(JSON.stringify({ ...s, notice, err }));
}
await browser.close();
