#!/usr/bin/env node
// pack-smoke.mjs: the package as a user installs it (imported by its name, from its built
// dist/ and its declared exports) sends one message to a running bridge and reads the
// answer. Usage: BRIDGE_URL=http://127.0.0.1:8000 node test/pack-smoke.mjs
// Prints one JSON document {ok, tier, text, types}; exits 1 when no answer came.
import { ResilientChatTransport } from '@aisdk-bridge/resilient-transport';

const base = process.env.BRIDGE_URL;
if (!base) {
  console.error('pack-smoke: set BRIDGE_URL to a running bridge');
  process.exit(2);
}
const transport = new ResilientChatTransport({ api: `${base}/api/chat` });
const chatId = `pack-smoke-${Date.now()}`;
const stream = await transport.sendMessages({
  trigger: 'submit-message',
  chatId,
  messageId: undefined,
  messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'Hello from the packed transport' }] }],
  abortSignal: AbortSignal.timeout(60_000),
});
const types = [];
let text = '';
for await (const chunk of stream) {
  types.push(chunk.type);
  if (chunk.type === 'text-delta') text += chunk.delta;
}
const tier = transport.tier;
transport.close();
const ok = types.at(-1) === 'finish' && text.length > 0;
console.log(JSON.stringify({ ok, tier, text, types }));
process.exit(ok ? 0 : 1);
