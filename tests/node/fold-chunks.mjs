#!/usr/bin/env node
// fold-chunks.mjs: what message does the client build from these chunks?
//
// Usage:
//   node fold-chunks.mjs [--chunks JSON_OR_PATH] [--final-only] [--allow-client-errors]
//   (without --chunks the JSON is read from stdin)
//
// Input: a JSON array of chunks (objects, or strings of raw `data:` JSON text), or an object
// { "chunks": [...], "message": <UIMessage to continue, optional> } ("message" is the
// readUIMessageStream option used when a response continues an existing assistant message).
//
// Every chunk is first validated exactly as the client does (parseJsonEventStream +
// uiMessageChunkSchema); the first invalid one FAILS the run. The chunks are then folded by the
// package's `readUIMessageStream` (same state machine as Chat), so a Python assembler can be
// compared with the client's result.
//
// Output: { "ok": true, "final": <UIMessage|null>, "messages": [every snapshot yielded],
//           "errorTexts": [errorText of `error` chunks], "streamError": null | {name, message} }
// Exit 1 when a chunk is invalid, or on a state-machine error (UIMessageStreamError) unless
// --allow-client-errors.

import {
  CheckFailed,
  foldChunks,
  parseArgs,
  readJsonArg,
  readStdin,
  isEntryPoint,
  runMain,
  UsageError,
  validateChunk,
} from './lib.mjs';

export async function main(argv) {
  const args = parseArgs(argv, { bools: ['final-only', 'allow-client-errors'] });
  const input =
    args.chunks != null ? await readJsonArg(args.chunks) : JSON.parse((await readStdin()).toString('utf8'));
  const rawChunks = Array.isArray(input) ? input : input?.chunks;
  if (!Array.isArray(rawChunks)) {
    throw new UsageError('input must be a JSON array of chunks or {"chunks": [...], "message"?: {...}}');
  }
  const message = Array.isArray(input) ? undefined : (input.message ?? undefined);

  const chunks = [];
  for (const [index, raw] of rawChunks.entries()) {
    const result = await validateChunk(raw);
    if (!result.ok) {
      throw new CheckFailed(`chunk #${index} is rejected by the client: ${result.reason}`, {
        failedChunk: { index, ...result, ok: undefined },
      });
    }
    chunks.push(result.value);
  }

  const { messages, final, errorTexts, streamError } = await foldChunks(chunks, { message });
  const output = {
    ok: streamError == null,
    final,
    messages: args['final-only'] ? (final ? [final] : []) : messages,
    errorTexts,
    streamError,
  };
  if (streamError && !args['allow-client-errors']) {
    throw new CheckFailed(`the client's state machine rejects the chunks: ${streamError.message}`, output);
  }
  return output;
}

if (isEntryPoint(import.meta.url)) runMain(() => main(process.argv.slice(2)));
