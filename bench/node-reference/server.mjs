// The benchmark's Node reference: the resumable-streams recipe for useChat, served by
// Node's plain http server (no framework), on the same Redis and the same fake OpenAI
// upstream as the bridge.
//
//   POST /api/chat               streamText(openai.chat(model)) -> toUIMessageStreamResponse,
//                                its SSE copy (consumeSseStream) fed to resumable-stream;
//                                the chat's active stream id is kept in Redis.
//   GET  /api/chat/:id/stream    resumes the active stream (204 when there is none).
//   GET  /healthz                readiness probe for the benchmark.
//
// Settings (environment): PORT, REDIS_URL, OPENAI_BASE_URL, OPENAI_API_KEY, BENCH_MODEL.
import http from "node:http";

import { createOpenAI } from "@ai-sdk/openai";
import {
  UI_MESSAGE_STREAM_HEADERS,
  convertToModelMessages,
  generateId,
  streamText,
} from "ai";
import { createClient } from "redis";
import { createResumableStreamContext } from "resumable-stream";

const port = Number(process.env.PORT ?? 3100);
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const modelName = process.env.BENCH_MODEL ?? "gpt-bench";
const CHAT_TTL_SECONDS = 24 * 60 * 60;

const publisher = createClient({ url: redisUrl });
const subscriber = createClient({ url: redisUrl });
for (const client of [publisher, subscriber]) {
  client.on("error", (error) => console.error("redis:", error.message));
}
await Promise.all([publisher.connect(), subscriber.connect()]);

// One context per process: a long-lived server has no waitUntil to give.
const streamContext = createResumableStreamContext({
  waitUntil: null,
  publisher,
  subscriber,
});

const openai = createOpenAI({
  baseURL: process.env.OPENAI_BASE_URL,
  apiKey: process.env.OPENAI_API_KEY ?? "bench",
});
const model = openai.chat(modelName);

const activeStreamKey = (chatId) => `chat:${chatId}:active-stream`;
const messagesKey = (chatId) => `chat:${chatId}:messages`;

async function readJson(request) {
  const pieces = [];
  for await (const piece of request) pieces.push(piece);
  return JSON.parse(Buffer.concat(pieces).toString("utf8"));
}

// Writes a fetch Response to Node's ServerResponse, honouring backpressure, and cancels
// the body when the client goes away (what a framework's adapter does).
async function sendWebResponse(response, res) {
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  let closed = false;
  res.on("close", () => {
    if (!res.writableFinished) {
      closed = true;
      reader.cancel().catch(() => {});
    }
  });
  try {
    while (!closed) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) {
        await new Promise((resolve) => {
          res.once("drain", resolve);
          res.once("close", resolve);
        });
      }
    }
  } catch {
    // The client left or the stream failed: nothing more to send.
  } finally {
    if (!res.writableEnded) res.end();
  }
}

function sendJson(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function postChat(req, res) {
  const { id: chatId, messages } = await readJson(req);
  if (typeof chatId !== "string" || !Array.isArray(messages)) {
    sendJson(res, 400, { error: "body needs id and messages" });
    return;
  }
  await publisher.del(activeStreamKey(chatId));
  const result = streamText({
    model,
    messages: await convertToModelMessages(messages),
  });
  const response = result.toUIMessageStreamResponse({
    originalMessages: messages,
    generateMessageId: generateId,
    onFinish: async ({ messages: finished }) => {
      await publisher.set(messagesKey(chatId), JSON.stringify(finished), {
        EX: CHAT_TTL_SECONDS,
      });
      await publisher.del(activeStreamKey(chatId));
    },
    async consumeSseStream({ stream }) {
      const streamId = generateId();
      await streamContext.createNewResumableStream(streamId, () => stream);
      await publisher.set(activeStreamKey(chatId), streamId, { EX: CHAT_TTL_SECONDS });
    },
  });
  await sendWebResponse(response, res);
}

async function resumeChat(chatId, res) {
  const streamId = await publisher.get(activeStreamKey(chatId));
  if (!streamId) {
    res.writeHead(204).end();
    return;
  }
  const stream = await streamContext.resumeExistingStream(streamId);
  if (!stream) {
    res.writeHead(204).end();
    return;
  }
  await sendWebResponse(
    new Response(stream.pipeThrough(new TextEncoderStream()), {
      headers: UI_MESSAGE_STREAM_HEADERS,
    }),
    res,
  );
}

const RESUME_PATH = /^\/api\/chat\/([^/]+)\/stream$/;

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, "http://localhost").pathname;
    if (req.method === "GET" && path === "/healthz") {
      sendJson(res, 200, { ok: true });
    } else if (req.method === "POST" && path === "/api/chat") {
      await postChat(req, res);
    } else if (req.method === "GET" && RESUME_PATH.test(path)) {
      await resumeChat(decodeURIComponent(RESUME_PATH.exec(path)[1]), res);
    } else {
      sendJson(res, 404, { error: "not found" });
    }
  } catch (error) {
    console.error(`request failed: ${error}`);
    if (!res.headersSent) sendJson(res, 500, { error: String(error) });
    else res.destroy();
  }
});
server.keepAliveTimeout = 60_000;
server.requestTimeout = 0; // streams last as long as their generation
server.headersTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  console.error(`node reference on http://127.0.0.1:${port}`);
});

// A failed Redis publish of one stream must not take the others down with the process.
// One line each: under overload there may be many.
process.on("unhandledRejection", (error) => console.error(`unhandled: ${error}`));

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
