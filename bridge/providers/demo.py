"""`demo:<anything>`: a scripted model. No network, no key; every reply says it is a demo.

It exists so the bridge runs (and its UI can be tried) without a provider key, and so
tests can script tool calls through the real runner. Replies are deterministic functions
of the request:

* the last assistant message ends with tool results → an answer quoting them;
* `use <tool>` with an offered tool → a call of it (input from its schema's required
  properties);
* an offered `get_weather` and "weather" in the text → `get_weather({"city": …})`;
* an offered `delete_file` and "delete" → a `delete_file` call (the approval demo);
* otherwise a short reasoning block and a markdown answer: a long one (~400 tokens) when
  the text says "long", with a source when it says "sources"; the short one names the
  files the message carries (what reached the provider: name, media type, size).

Tokens are emitted one by one, `token_delay` seconds apart; a stop ends the stream at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.providers._convert import as_text, to_json, tool_result
from bridge.providers.base import (
    ModelRequest,
    ProviderEvent,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    Source,
    StepFinished,
    StreamOpened,
    TextDelta,
    TextEnd,
    TextStart,
    ToolCall,
    ToolInputDelta,
    ToolInputStart,
    Usage,
)
from protocol.messages import (
    DynamicToolUIPart,
    FileUIPart,
    StepStartUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
)

LABEL = "*Demo model: a scripted reply, no AI model was called.*\n\n"
DEMO_SOURCE_URL = "https://ai-sdk.dev/docs/ai-sdk-ui/chatbot"
DEMO_SOURCE_TITLE = "AI SDK UI: Chatbot"

_TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class DemoToolCall:
    tool_name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DemoReply:
    """What the demo model will write, decided before anything is streamed."""

    reasoning: str
    text: str = ""
    sources: Sequence[tuple[str, str]] = ()
    """(url, title) pairs."""
    tool_calls: Sequence[DemoToolCall] = field(default_factory=tuple)


class DemoProvider:
    name = "demo"

    def __init__(self, *, token_delay: float = 0.03) -> None:
        self.token_delay = token_delay

    async def aclose(self) -> None:
        return None

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ProviderEvent, None]:
        reply = plan_reply(request)
        call_number = _tool_part_count(request.messages)
        yield StreamOpened(response_id=f"demo-{call_number}", model=request.model)
        emitted = 0

        yield ReasoningStart("reasoning-0")
        for token in tokens(reply.reasoning):
            await self._pause()
            emitted += 1
            yield ReasoningDelta("reasoning-0", token)
        yield ReasoningEnd("reasoning-0")

        if reply.text:
            yield TextStart("text-0")
            for token in tokens(reply.text):
                await self._pause()
                emitted += 1
                yield TextDelta("text-0", token)
            yield TextEnd("text-0")
        for index, (url, title) in enumerate(reply.sources):
            yield Source("url", f"demo-source-{index}", url=url, title=title)

        for offset, call in enumerate(reply.tool_calls):
            call_id = f"demo-call-{call_number + offset + 1}"
            arguments = to_json(call.input)
            yield ToolInputStart(call_id, call.tool_name)
            for start in range(0, len(arguments), 8):
                await self._pause()
                emitted += 1
                yield ToolInputDelta(call_id, arguments[start : start + 8])
            yield ToolCall(call_id, call.tool_name, arguments)

        yield StepFinished(
            finish_reason="tool-calls" if reply.tool_calls else "stop",
            usage=Usage(input_tokens=_input_tokens(request), output_tokens=emitted),
            raw_finish_reason="demo",
        )

    async def _pause(self) -> None:
        # sleep(0) still yields to the loop, so a stop is seen between tokens.
        await asyncio.sleep(self.token_delay)


def tokens(text: str) -> list[str]:
    """Words with their trailing whitespace: what the demo streams as one token."""
    return _TOKEN.findall(text)


# --------------------------------------------------------------------------- script


def plan_reply(request: ModelRequest) -> DemoReply:
    tools = {tool.name: tool for tool in request.tools}
    results = _last_step_results(request.messages)
    if results:
        return _answer_with_results(results)

    text = last_user_text(request.messages)
    lower = text.lower()
    explicit = re.search(r"\buse\s+`?([A-Za-z0-9_.:-]+?)`?(?=[\s,.;!?)]|$)", text)
    if explicit and explicit.group(1) in tools:
        tool = tools[explicit.group(1)]
        return _call(tool.name, example_input(tool.input_schema, text))
    if "get_weather" in tools and "weather" in lower:
        return _call("get_weather", {"city": city_in(text)})
    if "delete_file" in tools and "delete" in lower:
        schema = tools["delete_file"].input_schema
        return _call("delete_file", example_input(schema, text) or {"path": path_in(text)})

    sources = [(DEMO_SOURCE_URL, DEMO_SOURCE_TITLE)] if re.search(r"\bsources?\b", lower) else []
    reasoning = (
        f"The user wrote {len(tokens(text))} words. I am the scripted demo model, "
        "so I answer from a template."
    )
    body = (
        LONG_ANSWER
        if re.search(r"\blong\b", lower)
        else _short_answer(text) + _files_line(last_user_files(request.messages))
    )
    if sources:
        body += f"\n\nMore in the [AI SDK documentation]({DEMO_SOURCE_URL}) [1]."
    return DemoReply(reasoning=reasoning, text=LABEL + body, sources=sources)


def _call(tool_name: str, tool_input: dict[str, Any]) -> DemoReply:
    return DemoReply(
        reasoning=f"The demo script calls `{tool_name}` for this request.",
        tool_calls=(DemoToolCall(tool_name, tool_input),),
    )


def _short_answer(text: str) -> str:
    quoted = text.strip().replace("\n", " ")
    if len(quoted) > 200:
        quoted = quoted[:199] + "…"
    return (
        f"You said: **{quoted or '(nothing)'}**\n\n"
        "Set `OPENAI_API_KEY` or `ANTHROPIC_API_KEY` (or `BRIDGE_MODEL`) to talk to a real "
        "model. Meanwhile, ask this one for something *long*, for the *weather* or for "
        "*sources*."
    )


def _files_line(files: Sequence[FileUIPart]) -> str:
    if not files:
        return ""
    named = ", ".join(
        f"**{part.filename or 'unnamed'}** ({part.media_type}, {_data_url_bytes(part.url)} bytes)"
        for part in files
    )
    return f"\n\nAttached: {named}."


def _data_url_bytes(url: str) -> int | str:
    """The size of a base64 data URL's content, without decoding it; `?` for a link."""
    head, comma, data = url.partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        return "?"
    return len(data) * 3 // 4 - data[-2:].count("=")


def _answer_with_results(results: list[tuple[str, Any, bool]]) -> DemoReply:
    lines = []
    for tool_name, output, failed in results:
        if failed:
            lines.append(f"The tool `{tool_name}` did not run: {as_text(output)}")
        else:
            lines.append(f"The tool `{tool_name}` returned:\n\n```json\n{to_json(output)}\n```")
    names = ", ".join(f"`{name}`" for name, _, _ in results)
    return DemoReply(
        reasoning=f"The demo script now reports what {names} returned.",
        text=LABEL + "\n\n".join(lines),
    )


def _last_step_results(messages: Sequence[UIMessage]) -> list[tuple[str, Any, bool]]:
    """(tool name, output, failed) of each tool part with a result in the last step of
    the conversation's final message, when that message is the assistant's."""
    if not messages or messages[-1].role != "assistant":
        return []
    last_step: list[object] = []
    for part in messages[-1].parts:
        if isinstance(part, StepStartUIPart):
            last_step = []
        else:
            last_step.append(part)
    results = []
    for item in last_step:
        if isinstance(item, ToolUIPart | DynamicToolUIPart):
            result = tool_result(item)
            if result is not None:
                results.append((item.tool_name, result.output, result.is_error))
    return results


def last_user_text(messages: Sequence[UIMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return " ".join(p.text for p in message.parts if isinstance(p, TextUIPart))
    return ""


def last_user_files(messages: Sequence[UIMessage]) -> list[FileUIPart]:
    for message in reversed(messages):
        if message.role == "user":
            return [p for p in message.parts if isinstance(p, FileUIPart)]
    return []


def city_in(text: str) -> str:
    match = re.search(r"\b(?:in|for|at|to)\s+([A-Z][\w'-]*(?:[ -][A-Z][\w'-]*)*)", text)
    return match.group(1) if match else "Paris"


_PATH_WORD = re.compile(r"[\w./~-]+")
_WORD_RUN = re.compile(r"\w+")


def path_in(text: str) -> str:
    """The first word that looks like a path: up to its last `name.ext`, or from its first
    `/`. Linear in the text (one pass over its words, one over each word): a message is
    client input, and a backtracking pattern here was quadratic."""
    for found in _PATH_WORD.finditer(text):
        word = found.group(0)
        dot = len(word)
        while (dot := word.rfind(".", 0, dot)) > 0:
            if (
                _is_word_char(word[dot - 1])
                and dot + 1 < len(word)
                and _is_word_char(word[dot + 1])
            ):
                run = _WORD_RUN.match(word, dot + 1)
                assert run is not None
                return word[: run.end()]
        slash = word.find("/")
        if slash >= 0 and slash + 1 < len(word) and "~" not in word[slash:]:
            return word[slash:]
    return "notes.txt"


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def example_input(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """A plausible input for a JSON schema: its required properties, filled from the text
    where a name suggests what to look for (a city, a path), else typed placeholders."""
    properties = schema.get("properties")
    required = schema.get("required")
    if not isinstance(properties, dict) or not isinstance(required, list):
        return {}
    return {
        name: _example_value(name, properties.get(name) or {}, text)
        for name in required
        if isinstance(name, str)
    }


def _example_value(name: str, schema: dict[str, Any], text: str) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    lowered = name.lower()
    if kind == "string" or kind is None:
        if lowered in ("city", "location", "place"):
            return city_in(text)
        if "path" in lowered or "file" in lowered:
            return path_in(text)
        quoted = re.search(r"[\"“']([^\"”']+)[\"”']", text)
        return quoted.group(1) if quoted else "example"
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return example_input(schema, text)
    return None


def _tool_part_count(messages: Sequence[UIMessage]) -> int:
    return sum(len(message.tool_parts()) for message in messages)


def _input_tokens(request: ModelRequest) -> int:
    words = len(tokens(request.system or ""))
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, TextUIPart):
                words += len(tokens(part.text))
    return words + 10 * len(request.tools)


LONG_ANSWER = """\
## How this bridge streams a chat

When you send a message, the browser posts it to the bridge. The bridge starts a \
*generation*: a background task that calls the model, step after step, and writes every \
chunk it produces to a log before any client sees it. The HTTP response you are reading \
right now is only one reader of that log.

That design has a few pleasant consequences:

1. **Reloading the page does not lose the answer.** The client asks for the chat's running \
stream again, and the bridge replays the log from the start before it continues with \
live chunks.
2. **Several tabs can follow one chat.** Each one is just another reader of the same log, \
so they all see the same tokens in the same order.
3. **Stopping is explicit.** Closing a tab does not stop the model; pressing *Stop* does, \
and the provider request is closed at once so no tokens are wasted.

### Tools

A step ends when the model asks for a tool. The bridge runs server tools itself, asks \
the user first when a tool needs approval, and waits for the browser when the tool lives \
on the client. Then it calls the model again with the results, until the model answers \
in plain text or the step limit is reached.

```ts
// What `useChat({ resume: true })` does after a reload: read the running answer again.
const response = await fetch(`/api/chat/${chatId}/stream`);
```

### Where the chunks live

By default the log and the history are kept in SQLite, in `data/bridge.sqlite3`: a \
restarted bridge finds every chat, and an answer that was running when its process died \
is taken over and finished. Point `REDIS_URL` at a Redis server and they move there \
instead: then any number of bridge processes can share the work, and a client can \
reconnect to a different process than the one that started the generation. Old logs \
expire on their own after a day, and the message history of each chat is kept for a \
month unless you change the settings.

### Why a demo model

This reply was written by a script, not by a language model. It streams slowly on \
purpose, one word at a time, so that you can try *Stop*, reload the page halfway \
through, or open a second tab and watch both stay in sync. Configure a real provider \
with an API key when you want real answers; everything else stays the same.

That is all there is to it: one log per generation, many readers, and a model that can \
be swapped without touching the client."""
