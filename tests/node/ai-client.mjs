// Which major version of the `ai` client the scripts drive: AI_SDK_CLIENT=5 | 6 | 7 (default 7).
// The three are installed side by side (package.json: "ai5" and "ai6" are npm aliases).
//
//   import { ai, clientLevel, Chat } from './ai-client.mjs';
//
// `Chat` is what useChat runs: for 7 the `Chat` of @ai-sdk/react 4; for 5 and 6 the package's
// own `AbstractChat` over a plain state (React's state adds only re-render bookkeeping, and
// @ai-sdk/react 2 / 3 would pull in a second React).

const PACKAGES = { 5: 'ai5', 6: 'ai6', 7: 'ai' };

export const clientLevel = Number(process.env.AI_SDK_CLIENT ?? '7');
if (!(clientLevel in PACKAGES)) {
  process.stderr.write(`usage error: AI_SDK_CLIENT must be 5, 6 or 7, got ${process.env.AI_SDK_CLIENT}\n`);
  process.stdout.write(`${JSON.stringify({ ok: false, error: 'bad AI_SDK_CLIENT', usageError: true })}\n`);
  process.exit(2);
}

export const ai = await import(PACKAGES[clientLevel]);

/** ChatState without React: the same array replacement rules, and status callbacks. */
class PlainChatState {
  constructor(messages = []) {
    this.messages = messages;
    this.error = undefined;
    this.statusCallbacks = new Set();
    this._status = 'ready';
  }

  get status() {
    return this._status;
  }

  set status(value) {
    this._status = value;
    for (const callback of this.statusCallbacks) callback();
  }

  pushMessage = message => {
    this.messages = this.messages.concat(message);
  };

  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };

  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
  };

  snapshot = value => structuredClone(value);
}

class PlainChat extends ai.AbstractChat {
  constructor({ messages, ...init }) {
    const state = new PlainChatState(messages);
    super({ ...init, state });
    this.plainState = state;
  }

  /** ai 7's Chat has dispose(); before it, a page going away is what stop() does. */
  async dispose() {
    await this.stop();
  }

  '~registerStatusCallback'(callback) {
    this.plainState.statusCallbacks.add(callback);
    return () => this.plainState.statusCallbacks.delete(callback);
  }
}

export const Chat = clientLevel === 7 ? (await import('@ai-sdk/react')).Chat : PlainChat;
