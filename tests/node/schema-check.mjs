#!/usr/bin/env node
// schema-check.mjs: validates individual UI message chunks the way the client does.
//
// Usage:
//   node schema-check.mjs [--chunks JSON_OR_PATH] [--strict]
//   (without --chunks the JSON is read from stdin)
//
// Input: a JSON array. Each element is either a chunk object, or a STRING holding the exact
// JSON text a server puts after `data: ` (use this to test your own serializer's bytes, e.g.
// Python's json.dumps output, rather than a re-serialisation). Each one is wrapped as
// `data: <text>\n\n` and parsed with `parseJsonEventStream` + `uiMessageChunkSchema`, as
// DefaultChatTransport does.
//
// Output: { "ok": <all valid>, "count": N, "failed": [indexes],
//           "results": [ { "index", "ok": true, "type", "value": <parsed chunk> }
//                      | { "index", "ok": false, "reason", "error", "errorName", "issues"? } ] }
// Exit 0 even when chunks fail (the per-chunk results are the answer) unless --strict, which
// exits 1 when any chunk fails. Exit 2 on bad input.

import { CheckFailed, parseArgs, readJsonArg, readStdin, isEntryPoint, runMain, UsageError, validateChunk } from './lib.mjs';

export async function main(argv) {
  const args = parseArgs(argv, { bools: ['strict'] });
  const input =
    args.chunks != null ? await readJsonArg(args.chunks) : JSON.parse((await readStdin()).toString('utf8'));
  if (!Array.isArray(input)) throw new UsageError('input must be a JSON array of chunks');

  const results = [];
  for (const [index, chunk] of input.entries()) {
    const result = await validateChunk(chunk);
    results.push(
      result.ok
        ? { index, ok: true, type: result.value.type, value: result.value }
        : {
            index,
            ok: false,
            reason: result.reason,
            error: result.error,
            errorName: result.errorName,
            ...(result.issues ? { issues: result.issues } : {}),
          },
    );
  }
  const failed = results.filter(r => !r.ok).map(r => r.index);
  const output = { ok: failed.length === 0, count: results.length, failed, results };
  if (args.strict && failed.length > 0) {
    const first = results[failed[0]];
    throw new CheckFailed(
      `${failed.length} of ${results.length} chunks rejected; first: #${first.index}: ${first.reason}`,
      output,
    );
  }
  return output;
}

if (isEntryPoint(import.meta.url)) runMain(() => main(process.argv.slice(2)));
