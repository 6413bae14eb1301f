// Shared helpers for the Node conformance scripts in this folder (CLI parsing, output, SSE
// framing checks, chunk validation with the `ai` package's own parser).
//
// Every script prints exactly ONE JSON document on stdout. On failure it also prints a
// message on stderr and exits with a non-zero code (1 = check failed, 2 = bad usage).

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ai } from './ai-client.mjs';

// The client version is chosen by AI_SDK_CLIENT (see ai-client.mjs); ai 5 has no
// UIMessageStreamError (its state machine throws plain Errors).
const { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema, UIMessageStreamError } = ai;

export class UsageError extends Error {}

export class CheckFailed extends Error {
  /** @param {string} message @param {object} [output] JSON printed on stdout along with it */
  constructor(message, output = {}) {
    super(message);
    this.output = output;
  }
}

/** Writes one JSON document on stdout and exits when the pipe has drained. */
export function emit(doc, code = 0) {
  const text = `${toJson(doc)}\n`;
  process.exitCode = code;
  process.stdout.write(text, () => process.exit(code));
}

function jsonReplacer(_key, value) {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return describeError(value);
  return value;
}

/** A JSON-friendly view of an Error (AI SDK errors carry statusCode/responseBody etc.). */
export function describeError(error) {
  if (error == null) return null;
  if (!(error instanceof Error)) return { name: typeof error, message: String(error) };
  const out = { name: error.name, message: error.message };
  for (const key of ['statusCode', 'responseBody', 'url', 'chunkType', 'chunkId', 'code']) {
    if (error[key] !== undefined) out[key] = error[key];
  }
  if (error.cause !== undefined) {
    out.cause = error.cause instanceof Error ? error.cause.message : String(error.cause);
  }
  return out;
}

/**
 * Runs `main` and turns its result / exceptions into the single JSON document + exit code.
 * `main` returns the output document; throw CheckFailed for a failed check, UsageError for bad
 * arguments.
 */
export async function runMain(main) {
  const { code, doc, log } = await settle(main);
  if (log) process.stderr.write(log);
  emit(doc, code);
}

/** What runMain prints, without printing or exiting: `{ code, doc, log }` (log: stderr text). */
export async function settle(main) {
  try {
    return { code: 0, doc: await main(), log: '' };
  } catch (error) {
    if (error instanceof UsageError) {
      return {
        code: 2,
        doc: { ok: false, error: error.message, usageError: true },
        log: `usage error: ${error.message}\n`,
      };
    }
    if (error instanceof CheckFailed) {
      return {
        code: 1,
        doc: { ok: false, error: error.message, ...error.output },
        log: `FAILED: ${error.message}\n`,
      };
    }
    return {
      code: 1,
      doc: { ok: false, error: String(error?.message ?? error), crashed: true },
      log: `ERROR: ${error?.stack ?? error}\n`,
    };
  }
}

/** JSON text of an output document (bigints as strings, Errors described). */
export function toJson(doc) {
  return JSON.stringify(doc, jsonReplacer);
}

/** True in the script node was started with (false when imported, e.g. by worker.mjs). */
export function isEntryPoint(moduleUrl) {
  return process.argv[1] != null && pathToFileURL(resolve(process.argv[1])).href === moduleUrl;
}

let injectedStdin = null;

/** Runs a script's `main(argv)` in this process with `stdin` as its standard input. */
export async function runInProcess(main, argv, stdin) {
  injectedStdin = stdin;
  try {
    return await settle(() => main(argv));
  } finally {
    injectedStdin = null;
  }
}

/**
 * Minimal argv parser: `--flag value`, `--flag=value`, repeated flags collect into arrays
 * when listed in `multi`, booleans listed in `bools`.
 */
export function parseArgs(argv, { multi = [], bools = [] } = {}) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    let key = arg.slice(2);
    let value;
    const eq = key.indexOf('=');
    if (eq !== -1) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    } else if (bools.includes(key)) {
      value = true;
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`--${key} needs a value`);
      value = argv[++i];
    }
    if (multi.includes(key)) (out[key] ??= []).push(value);
    else out[key] = value;
  }
  return out;
}

export async function readStdin() {
  if (injectedStdin != null) return injectedStdin;
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return Buffer.concat(parts);
}

/** Reads PATH, or stdin when PATH is "-". */
export async function readInput(path) {
  return path === '-' ? readStdin() : readFile(path);
}

/** Parses JSON text, or reads it from a file / stdin ("-") when it does not look like JSON. */
export async function readJsonArg(value) {
  const trimmed = value.trimStart();
  const text =
    trimmed.startsWith('{') || trimmed.startsWith('[')
      ? value
      : (await readInput(value)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`not valid JSON (${error.message})`);
  }
}

export function bytesToStream(bytes) {
  return new ReadableStream({
    start(controller) {
      if (bytes.length > 0) controller.enqueue(new Uint8Array(bytes));
      controller.close();
    },
  });
}

export function arrayToStream(items) {
  return new ReadableStream({
    start(controller) {
      for (const item of items) controller.enqueue(item);
      controller.close();
    },
  });
}

/**
 * Splits raw SSE text into events the way an SSE parser does (lines end with CRLF, LF or CR;
 * a blank line dispatches). Returns the events and whatever trails after the last blank line
 * (an unterminated event, which the client silently drops).
 */
export function splitSse(text) {
  const lines = text.split(/\r\n|\r|\n/);
  // `split` yields a final '' when the text ends with a line terminator.
  const endsWithNewline = /(\r\n|\r|\n)$/.test(text);
  if (endsWithNewline) lines.pop();
  const events = [];
  let current = [];
  for (const line of lines) {
    if (line === '') {
      if (current.length > 0) events.push(parseEventLines(current));
      current = [];
    } else {
      current.push(line);
    }
  }
  const tail = current.length > 0 ? current.join('\n') : '';
  return { events, tail };
}

function parseEventLines(lines) {
  const event = { data: [], comments: [], id: undefined, event: undefined, retry: undefined };
  for (const line of lines) {
    if (line.startsWith(':')) {
      event.comments.push(line.slice(1).trimStart());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') event.data.push(value);
    else if (field === 'id') event.id = value;
    else if (field === 'event') event.event = value;
    else if (field === 'retry') event.retry = value;
  }
  return event;
}

/**
 * Framing report for a raw SSE body: counts, SSE `id:` values in order, whether [DONE] was
 * sent, and the problems that make the client lose data.
 */
export function sseFraming(text) {
  const { events, tail } = splitSse(text);
  const dataEvents = events.filter(e => e.data.length > 0);
  const problems = [];
  if (tail.trim() !== '') {
    problems.push(
      `the body ends with an event that is not followed by a blank line (the client drops it): ${JSON.stringify(tail.slice(0, 200))}`,
    );
  }
  return {
    events: events.length,
    dataEvents: dataEvents.length,
    commentEvents: events.filter(e => e.data.length === 0 && e.comments.length > 0).length,
    done: dataEvents.some(e => e.data.join('\n') === '[DONE]'),
    ids: events.filter(e => e.id !== undefined).map(e => e.id),
    dataEventsWithoutId: dataEvents.filter(e => e.id === undefined).length,
    eventNames: [...new Set(events.filter(e => e.event !== undefined).map(e => e.event))],
    crlf: text.includes('\r'),
    endsWithBlankLine: text === '' || /(\r\n|\r|\n)(\r\n|\r|\n)$/.test(text),
    problems,
    rawDataEvents: dataEvents.map(e => e.data.join('\n')),
  };
}

/**
 * Parses an SSE byte stream exactly as DefaultChatTransport does
 * (`parseJsonEventStream({ stream, schema: uiMessageChunkSchema })`) and returns the validated
 * chunks, or the first failure: `{ chunks, failure?: { index, rawValue, error } }`.
 */
export async function parseChunks(byteStream) {
  const chunks = [];
  const reader = parseJsonEventStream({ stream: byteStream, schema: uiMessageChunkSchema }).getReader();
  for (let index = 0; ; index++) {
    const { done, value } = await reader.read();
    if (done) return { chunks };
    if (!value.success) {
      await reader.cancel().catch(() => {});
      return { chunks, failure: { index, ...describeParseFailure(value) } };
    }
    chunks.push(value.value);
  }
}

/**
 * Turns a failed ParseResult (AI_JSONParseError or AI_TypeValidationError wrapping a ZodError
 * of the chunk union) into `{ error, reason, errorName, rawValue, issues? }` where `reason` is
 * short: "unknown chunk type \"x\"" or "start: messageId: Invalid input: expected string,
 * received null".
 */
export function describeParseFailure(result) {
  const error = result.error;
  const rawValue = result.rawValue;
  const out = {
    errorName: error?.name,
    rawValue: rawValue === undefined ? null : rawValue,
    error: String(error?.message ?? error).slice(0, 4000),
    reason: String(error?.message ?? error).split('\n')[0],
  };
  const issues = error?.cause?.issues;
  if (!Array.isArray(issues)) return out;
  if (rawValue == null || typeof rawValue !== 'object' || Array.isArray(rawValue)) {
    out.reason = `a chunk must be a JSON object, got ${JSON.stringify(rawValue)?.slice(0, 100)}`;
    return out;
  }
  const type = rawValue.type;
  const union = issues.length === 1 && issues[0].code === 'invalid_union' ? issues[0].errors : null;
  if (union == null) {
    out.issues = issues.map(formatIssue);
  } else {
    // Branches whose `type` matched are the ones that tell why this chunk failed.
    const matching = union.filter(
      branch => !branch.some(issue => issue.path?.length === 1 && issue.path[0] === 'type'),
    );
    if (matching.length === 0) {
      out.issues = [];
      out.reason =
        typeof type === 'string'
          ? `unknown chunk type ${JSON.stringify(type)}`
          : `chunk has no string "type" (got ${JSON.stringify(type)})`;
      return out;
    }
    out.issues = [...new Set(matching.flat().map(formatIssue))];
  }
  out.reason = `${typeof type === 'string' ? type : '?'}: ${out.issues.join('; ')}`;
  return out;
}

function formatIssue(issue) {
  const path = (issue.path ?? []).join('.');
  return `${path === '' ? '(chunk)' : path}: ${issue.message}`;
}

/** Validates one chunk (object, or the JSON text a server would put after `data: `). */
export async function validateChunk(chunk) {
  const text = typeof chunk === 'string' ? chunk : JSON.stringify(chunk);
  const bytes = Buffer.from(`data: ${text}\n\n`, 'utf8');
  const { chunks, failure } = await parseChunks(bytesToStream(bytes));
  if (failure) return { ok: false, ...failure, index: undefined };
  if (chunks.length !== 1) return { ok: false, error: `parsed into ${chunks.length} chunks` };
  return { ok: true, value: chunks[0] };
}

/**
 * Folds validated chunks with the package's `readUIMessageStream` (the same state machine,
 * `processUIMessageStream`, that Chat uses).
 *
 * Returns `{ messages, final, errorTexts, streamError }`:
 * - `errorTexts`: the `errorText` of each `error` chunk (readUIMessageStream reports them and goes
 *   on; the Chat class stops at the first one and shows it as chat.error);
 * - `streamError`: a state-machine failure (UIMessageStreamError, e.g. a text-delta without
 *   text-start, a tool result for an unknown toolCallId), after which nothing more is processed.
 */
export async function foldChunks(chunks, { message } = {}) {
  const errorTexts = [];
  let streamError = null;
  const errorChunkTexts = chunks.filter(c => c.type === 'error').map(c => c.errorText);
  const messages = [];
  const iterable = readUIMessageStream({
    message,
    stream: arrayToStream(chunks),
    terminateOnError: false,
    onError: error => {
      if (UIMessageStreamError?.isInstance(error) || !(error instanceof Error)) {
        streamError ??= describeError(error);
      } else if (errorTexts.length < errorChunkTexts.length && error.message === errorChunkTexts[errorTexts.length]) {
        errorTexts.push(error.message);
      } else {
        streamError ??= describeError(error);
      }
    },
  });
  for await (const snapshot of iterable) messages.push(snapshot);
  return { messages, final: messages.at(-1) ?? null, errorTexts, streamError };
}
