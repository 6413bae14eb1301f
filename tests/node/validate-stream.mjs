#!/usr/bin/env node
// validate-stream.mjs: checks one UI message stream response body (SSE) with the real `ai`
// client code.
//
// Usage:
//   node validate-stream.mjs --file PATH            (a saved SSE body; PATH "-" = stdin)
//   node validate-stream.mjs --url URL [--method POST] [--body JSON] [--header 'k: v']...
//                            [--timeout MS] [--allow-status]
//   common options: [--final-only] [--allow-client-errors]
//
// What it does:
//   1. framing (on the raw text): every event must end with a blank line (an unterminated last
//      event is dropped by the client -> FAIL); collects the SSE `id:` fields in order.
//   2. parses the body with `parseJsonEventStream({ stream, schema: uiMessageChunkSchema })`,
//      exactly as DefaultChatTransport does, and FAILS on the first chunk that is not valid JSON
//      or does not validate (reports its index, raw text and the validation error).
//   3. folds the validated chunks with `readUIMessageStream` (the state machine Chat uses) and
//      FAILS on a state-machine error (UIMessageStreamError: text-delta without text-start, tool
//      output for an unknown toolCallId, ...) unless --allow-client-errors. `error` chunks are
//      valid protocol: their texts are reported in `errorTexts`, not a failure.
//   With --url: a non-2xx status FAILS (unless --allow-status); 204 gives zero chunks.
//
// Output (stdout, one JSON document):
//   { "ok": true,
//     "chunks": [ ...validated chunks... ],
//     "messages": [ ...every UIMessage snapshot yielded by readUIMessageStream... ],
//     "final": <last UIMessage or null>,
//     "ids": [ ...SSE id field values, in order... ],
//     "errorTexts": [ ...errorText of error chunks... ],
//     "streamError": null | { name, message, ... },
//     "sse": { events, dataEvents, commentEvents, done, ids, dataEventsWithoutId, eventNames,
//              crlf, endsWithBlankLine, problems },
//     "http": { status, headers } (with --url only) }
//   On failure: exit 1, stderr "FAILED: ...", stdout { "ok": false, "error": "...",
//     "failedChunk"?: { index, rawValue, error }, ...whatever was computed so far }.

import {
  bytesToStream,
  CheckFailed,
  foldChunks,
  parseArgs,
  parseChunks,
  readInput,
  isEntryPoint,
  runMain,
  sseFraming,
  UsageError,
} from './lib.mjs';

async function fetchBody(args) {
  const method = (args.method ?? (args.body != null ? 'POST' : 'GET')).toUpperCase();
  const headers = {};
  for (const header of args.header ?? []) {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header must be "name: value", got ${JSON.stringify(header)}`);
    headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
  }
  if (args.body != null && !Object.keys(headers).some(h => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }
  const timeoutMs = Number(args.timeout ?? 30000);
  const response = await fetch(args.url, {
    method,
    headers,
    body: args.body ?? undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  const http = {
    status: response.status,
    headers: Object.fromEntries(response.headers.entries()),
  };
  if (!response.ok && !args['allow-status']) {
    throw new CheckFailed(
      `HTTP ${response.status} from ${method} ${args.url}: ${bytes.toString('utf8').slice(0, 500)}`,
      { http },
    );
  }
  return { bytes, http };
}

export async function main(argv) {
  const args = parseArgs(argv, {
    multi: ['header'],
    bools: ['final-only', 'allow-client-errors', 'allow-status'],
  });
  if ((args.file == null) === (args.url == null)) {
    throw new UsageError('give exactly one of --file PATH or --url URL');
  }

  let bytes;
  let http;
  if (args.file != null) {
    bytes = await readInput(args.file);
  } else {
    ({ bytes, http } = await fetchBody(args));
  }

  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const { rawDataEvents, ...sse } = sseFraming(text);
  const partial = { sse, ids: sse.ids, ...(http ? { http } : {}) };

  const { chunks, failure } = await parseChunks(bytesToStream(bytes));
  if (failure) {
    throw new CheckFailed(
      `chunk #${failure.index} is rejected by the client (parseJsonEventStream + uiMessageChunkSchema): ${failure.reason}\n  raw: ${(rawDataEvents.filter(d => d !== '[DONE]')[failure.index] ?? JSON.stringify(failure.rawValue)).slice(0, 500)}`,
      { ...partial, chunks, failedChunk: failure },
    );
  }
  if (sse.problems.length > 0) {
    throw new CheckFailed(sse.problems.join('; '), { ...partial, chunks });
  }

  const { messages, final, errorTexts, streamError } = await foldChunks(chunks);
  const result = {
    ok: true,
    chunks,
    messages: args['final-only'] ? (final ? [final] : []) : messages,
    final,
    ids: sse.ids,
    errorTexts,
    streamError,
    ...partial,
  };
  if (streamError && !args['allow-client-errors']) {
    throw new CheckFailed(
      `the client's state machine rejects the stream: ${streamError.message}`,
      { ...result, ok: false },
    );
  }
  return result;
}

if (isEntryPoint(import.meta.url)) runMain(() => main(process.argv.slice(2)));
