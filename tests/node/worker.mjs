#!/usr/bin/env node
// worker.mjs: runs validate-stream, schema-check and fold-chunks again and again in ONE Node
// process (loading the `ai` package once: most of a script run's time), for one client
// version (AI_SDK_CLIENT, see ai-client.mjs). Used by tests/node_harness.py.
//
// Protocol: one JSON request per line on stdin,
//   { "script": "validate-stream", "args": ["--file", "-"], "stdin": "<base64>" }
// one JSON answer per line on stdout, in order,
//   { "code": 0 | 1 | 2, "doc": <what the script prints>, "log": "<what it writes on stderr>" }
// Requests run one at a time, so scripts never share state. The worker exits at the end of
// stdin.

import { createInterface } from 'node:readline';

import { main as foldChunks } from './fold-chunks.mjs';
import { runInProcess, toJson } from './lib.mjs';
import { main as schemaCheck } from './schema-check.mjs';
import { main as validateStream } from './validate-stream.mjs';

const SCRIPTS = {
  'validate-stream': validateStream,
  'schema-check': schemaCheck,
  'fold-chunks': foldChunks,
};

async function answer(line) {
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    return { code: 2, doc: { ok: false, error: `bad request line: ${error.message}`, usageError: true }, log: '' };
  }
  const main = SCRIPTS[request.script];
  if (main == null) {
    const error = `the worker runs ${Object.keys(SCRIPTS).join(', ')}, not ${JSON.stringify(request.script)}`;
    return { code: 2, doc: { ok: false, error, usageError: true }, log: `usage error: ${error}\n` };
  }
  const stdin = Buffer.from(request.stdin ?? '', 'base64');
  return runInProcess(main, request.args ?? [], stdin);
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') continue;
  const result = await answer(line);
  await new Promise(resolve => process.stdout.write(`${toJson(result)}\n`, resolve));
}
