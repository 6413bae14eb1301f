// The AI SDK's own answer to a recorded provider stream: each recording is fed, byte for
// byte, to `streamText` with the matching provider package (through a `fetch` that returns
// the recorded body), and the UI message the SDK builds from it is printed.
//
//   node provider-reference.mjs <recording.sse>...
//
// The folder a recording is in names its provider path: `openai` (@ai-sdk/openai,
// Responses), `openai-chat` (@ai-sdk/openai-compatible, Chat Completions), `anthropic`
// (@ai-sdk/anthropic). A leading SSE comment `: tools: a,b` declares client tools (without
// `execute`: the step ends at their calls), `: provider-tools: a,b` the provider-defined
// tools the request offered. One process answers for every recording.
//
// Prints one JSON document: {"<recording>": {"message": UIMessage, "errors": [text...],
// "finishReason": ..., "usage": ...}}.

import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { jsonSchema, readUIMessageStream, stepCountIs, streamText, tool } from 'ai';
import { describeError, emit } from './lib.mjs';

function recordedFetch(body) {
  return async () =>
    new Response(body, {
      status: 200,
      headers: { 'content-type': 'text/event-stream', 'x-request-id': 'req_recorded' },
    });
}

function provider(kind, fetch) {
  const options = { apiKey: 'recorded', baseURL: 'http://recorded.invalid/v1', fetch };
  switch (kind) {
    case 'openai': {
      const openai = createOpenAI(options);
      return { provider: openai, model: openai.responses('gpt-5-mini') };
    }
    case 'openai-chat': {
      const compatible = createOpenAICompatible({ ...options, name: 'compatible', includeUsage: true });
      return { provider: compatible, model: compatible('compatible-model') };
    }
    case 'anthropic': {
      const anthropic = createAnthropic(options);
      return { provider: anthropic, model: anthropic('claude-sonnet-4-5') };
    }
    default:
      throw new Error(`no provider path for ${kind}`);
  }
}

// Provider-defined tools a recording's request offered (`: provider-tools: a,b`), by the
// name the bridge shows their calls under.
const PROVIDER_TOOLS = {
  openai: {
    web_search: p => p.tools.webSearch({}),
    file_search: p => p.tools.fileSearch({ vectorStoreIds: ['vs_recorded'] }),
    code_interpreter: p => p.tools.codeInterpreter({}),
    image_generation: p => p.tools.imageGeneration({}),
    mcp: p =>
      p.tools.mcp({ serverLabel: 'deepwiki', serverUrl: 'https://mcp.deepwiki.com/mcp' }),
  },
  anthropic: {
    web_search: p => p.tools.webSearch_20250305({}),
    web_fetch: p => p.tools.webFetch_20250910({}),
    code_execution: p => p.tools.codeExecution_20250825({}),
    tool_search_tool_regex: p => p.tools.toolSearchRegex_20251119({}),
  },
};

function header(text, name) {
  const match = new RegExp(`^: ${name}: (.*)$`, 'm').exec(text.split('data:', 1)[0]);
  return match ? match[1].split(',').map(item => item.trim()) : [];
}

function declaredTools(kind, provider, text) {
  const tools = {};
  for (const name of header(text, 'tools')) {
    tools[name] = tool({
      description: name,
      inputSchema: jsonSchema({ type: 'object', additionalProperties: true }),
    });
  }
  for (const name of header(text, 'provider-tools')) {
    tools[name] = PROVIDER_TOOLS[kind][name](provider);
  }
  return tools;
}

async function answer(path) {
  const body = await readFile(path);
  const kind = basename(dirname(path));
  const errors = [];
  const chosen = provider(kind, recordedFetch(new Uint8Array(body)));
  const result = streamText({
    model: chosen.model,
    prompt: 'Hello',
    tools: declaredTools(kind, chosen.provider, body.toString('utf8')),
    maxRetries: 0,
    onError: () => {}, // reported through the UI stream's error chunks below
  });
  const stream = result.toUIMessageStream({
    sendReasoning: true,
    sendSources: true,
    onError: error => {
      const text = error instanceof Error ? error.message : JSON.stringify(error);
      errors.push(text);
      return text;
    },
  });
  let message;
  for await (const state of readUIMessageStream({ stream, terminateOnError: false })) {
    message = state;
  }
  const finishReason = await result.finishReason.catch(() => null);
  const usage = await result.usage.catch(() => null);
  return { message: message ?? null, errors, finishReason, usage };
}

// `--next <outputs> <recording> <follow-up>`: the request the AI SDK makes for the step
// after the recording's, its client tools answered with `outputs` (JSON, by tool name) and
// the follow-up recording as that step's answer. Prints {"requests": [body, ...]}.
async function nextRequests(outputs, path, followUp) {
  const bodies = [await readFile(path), await readFile(followUp)];
  const requests = [];
  const fetch = async (_url, init) => {
    requests.push(JSON.parse(init.body));
    const body = bodies[Math.min(requests.length - 1, 1)];
    return new Response(new Uint8Array(body), {
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
    });
  };
  const chosen = provider(basename(dirname(path)), fetch);
  const tools = {};
  for (const name of header(bodies[0].toString('utf8'), 'tools')) {
    tools[name] = tool({
      description: name,
      inputSchema: jsonSchema({ type: 'object', additionalProperties: true }),
      execute: async () => outputs[name],
    });
  }
  const result = streamText({
    model: chosen.model,
    prompt: 'Hello',
    tools,
    stopWhen: stepCountIs(2),
    maxRetries: 0,
  });
  await result.consumeStream();
  return { requests };
}

if (process.argv[2] === '--next') {
  const [, , , outputs, path, followUp] = process.argv;
  emit(await nextRequests(JSON.parse(outputs), path, followUp));
} else {
  emitAnswers(process.argv.slice(2));
}

async function emitAnswers(paths) {
const results = {};
for (const path of paths) {
  try {
    results[path] = await answer(path);
  } catch (error) {
    results[path] = { message: null, errors: [], failed: describeError(error) };
  }
}
emit(results);
}
