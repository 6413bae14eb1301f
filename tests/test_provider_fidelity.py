"""The differential suite: the bridge's answer to a recorded provider stream against the AI
SDK's own.

Each recording under tests/recordings/<path>/ is a provider stream in its real framing
(Responses and Messages with `event:` lines, Chat Completions with `data:` and `[DONE]`),
written from the APIs' documented event shapes (and the fields the @ai-sdk providers parse).
The same bytes go

* to `streamText` with the matching @ai-sdk provider package (tests/node/provider-reference.mjs,
  one Node process for every recording), which prints the UI message the SDK builds;
* to the bridge's provider (its real SDK client, against a local replay server), whose events
  go through the runner's step transformer into a message assembled as the client would.

What the user sees after the first step is compared: text, reasoning, tool calls (name,
input, provider-executed, state, output or error), sources, files and errors (the provider's
own error text must be in the bridge's), and the step's finish reason and usage. Where the
bridge deliberately differs, DIFFERENCES names the field and why, and the test checks the
difference is still there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import ProviderError
from bridge.generation.transform import StepTransformer
from bridge.log.closing import closing_chunks
from bridge.providers.anthropic import AnthropicProvider
from bridge.providers.base import ModelRequest, Provider, ToolSpec
from bridge.providers.openai_chat import OpenAIChatProvider
from bridge.providers.openai_responses import OpenAIResponsesProvider
from protocol.assembler import MessageAssembler
from protocol.chunks import ErrorChunk, StartChunk, StartStepChunk, UIMessageChunk
from protocol.messages import UIMessage
from tests.fakes import collect, message
from tests.fakes.replay import ReplayServer
from tests.node_harness import run_node

RECORDINGS = Path(__file__).parent / "recordings"
PATHS = ("openai", "openai-chat", "anthropic")
ALL = sorted(path for kind in PATHS for path in (RECORDINGS / kind).glob("*.sse"))
BODIES = {path: path.read_bytes() for path in ALL}

_MALFORMED = (
    "The error text: the AI SDK shows its JSON parser's message (the broken text and a "
    "SyntaxError); the bridge says which provider sent an event it cannot read and its size, "
    "never quoting provider output into the chat."
)
_MALFORMED_FINISH = (
    "The step's finish reason after an unreadable event: the AI SDK's Responses provider "
    "makes it `error` (so the calls it read end the answer unanswered); the bridge keeps the "
    "API's own (`tool-calls`), so the calls it read are answered and the answer goes on."
)
_UNKNOWN_BLOCK = (
    "An unknown block type: the AI SDK's schema rejects the event and shows a type validation "
    "error; the bridge skips what it does not know (with a debug log), so a new block type the "
    "API adds does not put an error in front of the user."
)
_NO_SUCH_TOOL = (
    "The error of a call to an undeclared tool: the AI SDK says `Model tried to call "
    "unavailable tool`, the bridge's runner `There is no tool named ...` (the model reads "
    "it and may retry), as the tool part's error only, not as an error of the answer."
)

_DOCUMENT_SOURCE = (
    "A citation of a document: the AI SDK looks the document up in its prompt and shows no "
    "source when it is not there (this recording's prompt has none); the bridge shows the "
    "source with the title the citation carries."
)

DIFFERENCES: dict[str, dict[str, str]] = {
    "anthropic/document-citations.sse": {"sources": _DOCUMENT_SOURCE},
    "openai/malformed-event.sse": {"errors": _MALFORMED, "finishReason": _MALFORMED_FINISH},
    "openai-chat/malformed-chunk.sse": {"errors": _MALFORMED},
    "anthropic/malformed-event.sse": {"errors": _MALFORMED},
    "anthropic/unknown-block-and-event.sse": {"errors": _UNKNOWN_BLOCK},
    "openai/parallel-wrapper-unknown-recipient.sse": {
        "tools": _NO_SUCH_TOOL,
        "errors": _NO_SUCH_TOOL,
    },
}


def header(text: str, name: str) -> list[str]:
    """`: <name>: a,b` comment lines before the first event: the request's tools."""
    head = text.split("data:", 1)[0]
    for line in head.splitlines():
        if line.startswith(f": {name}: "):
            return [item.strip() for item in line.removeprefix(f": {name}: ").split(",")]
    return []


def provider_for(kind: str, url: str) -> Provider:
    if kind == "anthropic":
        return AnthropicProvider(api_key="recorded", base_url=url, max_retries=0)
    if kind == "openai-chat":
        return OpenAIChatProvider(api_key="recorded", base_url=url + "/v1", max_retries=0)
    return OpenAIResponsesProvider(api_key="recorded", base_url=url + "/v1", max_retries=0)


async def bridge_answer(replay: ReplayServer, kind: str, body: bytes) -> dict[str, Any]:
    """The UI message the bridge builds from a recording of provider path `kind`, as the
    runner's first step makes it (its unknown-tool check included), and the error texts it
    shows."""
    declared = header(body.decode(), "tools")
    tools = [ToolSpec(name, name, {"type": "object"}) for name in declared]

    def check(name: str, _input: dict[str, Any]) -> str | None:
        if name in declared:
            return None
        return f"There is no tool named {name!r} (tools: {', '.join(declared) or 'none'})."

    replay.serve(body)
    provider = provider_for(kind, replay.url)
    transformer = StepTransformer(0, check)
    assembler = MessageAssembler(message_id="m", stop_on_error=False)
    errors: list[str] = []

    def apply(chunks: Iterator[UIMessageChunk] | list[UIMessageChunk]) -> None:
        for chunk in chunks:
            if isinstance(chunk, ErrorChunk):
                errors.append(chunk.error_text)
            assembler.apply(chunk)  # raises where the AI SDK client would throw

    apply([StartChunk(message_id="m"), StartStepChunk()])
    request = ModelRequest(model="recorded", messages=[message("user", "Hello")], tools=tools)
    events: AsyncIterator[Any] = provider.stream(request)
    finish: str | None = None
    usage: dict[str, int | None] | None = None
    try:
        async for event in events:
            apply(transformer.transform(event))
    except ProviderError as exc:
        apply(closing_chunks(error_text=exc.message, step_open=True))
        finish = "error"
    finally:
        await provider.aclose()
    if transformer.finished is not None:
        finish = finish or transformer.finished.finish_reason
        step = transformer.finished.usage
        usage = {
            "input": step.input_tokens,
            "output": step.output_tokens,
            "reasoning": step.reasoning_tokens,
            "cachedInput": step.cached_input_tokens,
        }
    return {
        "message": assembler.to_dict(),
        "errors": errors,
        "finishReason": finish,
        "usage": usage,
    }


def reference_usage(usage: dict[str, Any] | None) -> dict[str, int | None] | None:
    """The AI SDK's usage in the bridge's terms (None: the SDK reports none)."""
    if not usage or usage.get("inputTokens") is None:
        return None
    return {
        "input": usage.get("inputTokens"),
        "output": usage.get("outputTokens"),
        "reasoning": (usage.get("outputTokenDetails") or {}).get("reasoningTokens"),
        "cachedInput": (usage.get("inputTokenDetails") or {}).get("cacheReadTokens"),
    }


def comparable_usage(usage: dict[str, int | None] | None) -> dict[str, int] | None:
    """A count the provider did not report is None in the bridge and 0 in the AI SDK's
    usage: both read as 0 here, and a usage with no count at all as none."""
    if usage is None or all(count is None for count in usage.values()):
        return None
    return {name: count or 0 for name, count in usage.items()}


def summary(answer: dict[str, Any]) -> dict[str, Any]:
    """What the comparison looks at, the same way for both answers."""
    parts = (answer.get("message") or {}).get("parts", [])
    tools = []
    for part in parts:
        kind = part["type"]
        if kind == "dynamic-tool" or kind.startswith("tool-"):
            tools.append(
                {
                    "name": part.get("toolName") or kind.removeprefix("tool-"),
                    "input": part.get("input"),
                    "providerExecuted": bool(part.get("providerExecuted")),
                    "state": part["state"],
                    "output": part.get("output"),
                    "errorText": part.get("errorText"),
                }
            )
    return {
        "text": "".join(part["text"] for part in parts if part["type"] == "text"),
        "reasoning": [part["text"] for part in parts if part["type"] == "reasoning"],
        "tools": tools,
        "sources": [
            (part["type"], part.get("url"), part.get("title"), part.get("mediaType"))
            for part in parts
            if part["type"] in ("source-url", "source-document")
        ],
        "files": [(part["mediaType"], part["url"]) for part in parts if part["type"] == "file"],
        "errors": answer.get("errors", []),
        # A call the AI SDK failed before any output has no finish reason: its answer is
        # the error, as the bridge's `finish{finishReason: "error"}` says.
        "finishReason": answer.get("finishReason") or ("error" if answer.get("errors") else None),
        "usage": comparable_usage(answer.get("usage")),
    }


def errors_match(reference: list[str], bridge: list[str]) -> bool:
    """The bridge shows each error the AI SDK shows, the provider's own text within its
    own (the bridge adds which provider and the error's kind)."""
    return len(reference) == len(bridge) and all(
        ours in theirs for ours, theirs in zip(reference, bridge, strict=True)
    )


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    answers = run_node("provider-reference", *map(str, ALL), timeout=300)
    return {str(Path(path).relative_to(RECORDINGS)): answer for path, answer in answers.items()}


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def test_recordings_cover_every_provider_path() -> None:
    for kind in PATHS:
        assert len(list((RECORDINGS / kind).glob("*.sse"))) >= 10, kind


@pytest.mark.node
@pytest.mark.parametrize("recording", ALL, ids=lambda path: f"{path.parent.name}/{path.stem}")
async def test_provider_answer_matches_the_ai_sdk(
    recording: Path, reference: dict[str, Any], replay: ReplayServer
) -> None:
    name = str(recording.relative_to(RECORDINGS))
    theirs = reference[name]
    assert "failed" not in theirs, theirs.get("failed")
    body = BODIES[recording]
    expected = summary({**theirs, "usage": reference_usage(theirs.get("usage"))})
    actual = summary(await bridge_answer(replay, recording.parent.name, body))
    differences = DIFFERENCES.get(name, {})
    for field in expected:
        same = (
            errors_match(expected[field], actual[field])
            if field == "errors"
            else expected[field] == actual[field]
        )
        if field in differences:
            assert not same, f"{name}: {field} no longer differs: {differences[field]}"
        else:
            assert same, f"{name}: {field}\n AI SDK: {expected[field]}\n bridge: {actual[field]}"


# --------------------------------------------------------------------------- later steps


async def next_request(
    replay: ReplayServer, kind: str, first: bytes, outputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The body of the model call after a turn answered with `first`: what the bridge
    sends back of that answer. `outputs` answers its client tool calls, by tool name."""
    answer = await bridge_answer(replay, kind, first)
    assert answer["errors"] == []
    for part in answer["message"]["parts"]:
        if outputs is not None and part["type"].startswith("tool-"):
            part.update(state="output-available", output=outputs[part["type"][5:]])
    conversation = [
        message("user", "Hello"),
        UIMessage.model_validate(answer["message"]),
        message("user", "And then?"),
    ]
    replay.serve(BODIES[RECORDINGS / kind / "text.sse"])
    provider = provider_for(kind, replay.url)
    try:
        await collect(provider.stream(ModelRequest(model="recorded", messages=conversation)))
    finally:
        await provider.aclose()
    body: dict[str, Any] = replay.requests[-1]["body"]
    return body


async def test_provider_next_turn_sends_back_openai_reasoning_with_its_encrypted_content(
    replay: ReplayServer,
) -> None:
    body = await next_request(
        replay, "openai", BODIES[RECORDINGS / "openai" / "reasoning-summaries-encrypted.sse"]
    )
    items = [item for item in body["input"] if item.get("role") != "user"]
    assert items[0] == {
        "type": "reasoning",
        "id": "rs_68a1f0c4e1a48190b2",
        "summary": [
            {
                "type": "summary_text",
                "text": "**Checking the question**\n\nThe user asks for 17 \u00d7 23.",
            },
            {"type": "summary_text", "text": "**Computing**\n\n17 \u00d7 23 = 391."},
        ],
        "encrypted_content": "gAAAAABoofDEncRyPtEdReAsOnInG0123456789abcdef==",
    }
    # The item it produced follows it, by id (the API refuses a reasoning item alone).
    assert items[1]["type"] == "message"
    assert items[1]["id"] == "msg_68a1f0c5f0c88190c3"
    assert items[1]["content"][0]["text"] == "17 \u00d7 23 = **391**."


@pytest.mark.parametrize(
    ("recording", "block"),
    [
        (
            "thinking-signature.sse",
            {
                "type": "thinking",
                "thinking": "The user asks for 12 \u00d7 12 = 144.",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
            },
        ),
        (
            "redacted-thinking.sse",
            {
                "type": "redacted_thinking",
                "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP",
            },
        ),
    ],
)
async def test_provider_next_turn_sends_back_anthropic_thinking_as_it_came(
    replay: ReplayServer, recording: str, block: dict[str, Any]
) -> None:
    body = await next_request(replay, "anthropic", BODIES[RECORDINGS / "anthropic" / recording])
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == block


async def test_provider_next_turn_sends_the_parallel_wrapper_back_as_the_api_issued_it(
    replay: ReplayServer,
) -> None:
    """The expanded calls' ids (`<call id>_<i>`) were never issued by the API: the wrapper
    goes back as the one call it sent (its call id, item id and arguments) with one output,
    the results joined in call order."""
    recording = BODIES[RECORDINGS / "openai" / "parallel-wrapper.sse"]
    body = await next_request(
        replay,
        "openai",
        recording,
        outputs={"get_weather": {"temperature": 21}, "get_time": "14:05"},
    )
    arguments = (
        '{"tool_uses":[{"recipient_name":"functions.get_weather","parameters":{"city":"Paris"}},'
        '{"recipient_name":"functions.get_time","parameters":{"timezone":"Europe/Paris"}}]}'
    )
    assert body["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
        {
            "type": "function_call",
            "call_id": "call_Pa9rL3",
            "name": "parallel",
            "arguments": arguments,
            "id": "fc_68a1f0cae4f08190b8",
        },
        {
            "type": "function_call_output",
            "call_id": "call_Pa9rL3",
            "output": '{"temperature":21}\n14:05',
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "And then?"}],
        },
    ]


@pytest.mark.node
async def test_provider_next_turn_parallel_wrapper_differs_from_the_ai_sdk_by_design(
    replay: ReplayServer,
) -> None:
    """The AI SDK's provider, on the same recording and the same tool outputs, sends the
    expanded calls under ids the API never issued (it re-wraps them only when the API keeps
    the conversation, `previous_response_id`); the bridge sends the one call the API issued
    (see above). The results the model reads are the same text, in the same order."""
    recording = RECORDINGS / "openai" / "parallel-wrapper.sse"
    outputs = {"get_weather": {"temperature": 21}, "get_time": "14:05"}
    answers = run_node(
        "provider-reference",
        "--next",
        json.dumps(outputs),
        str(recording),
        str(RECORDINGS / "openai" / "text.sse"),
        timeout=120,
    )
    theirs = answers["requests"][1]["input"][1:]
    assert theirs == [
        {
            "type": "function_call",
            "call_id": "call_Pa9rL3_0",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {
            "type": "function_call",
            "call_id": "call_Pa9rL3_1",
            "name": "get_time",
            "arguments": '{"timezone":"Europe/Paris"}',
        },
        {
            "type": "function_call_output",
            "call_id": "call_Pa9rL3_0",
            "output": '{"temperature":21}',
        },
        {"type": "function_call_output", "call_id": "call_Pa9rL3_1", "output": "14:05"},
    ]
    ours = (await next_request(replay, "openai", BODIES[recording], outputs=outputs))["input"]
    call, output = ours[1:3]
    assert (call["call_id"], call["name"], output["call_id"]) == (
        "call_Pa9rL3",
        "parallel",
        "call_Pa9rL3",
    )
    assert output["output"] == "\n".join(
        item["output"] for item in theirs if item["type"] == "function_call_output"
    )


async def test_provider_next_turn_sends_an_incomplete_parallel_group_as_separate_calls(
    replay: ReplayServer,
) -> None:
    """Without every expanded call's result the wrapper cannot be answered as one: the
    calls that have one go back under their own ids (as the AI SDK sends them)."""
    answer = await bridge_answer(
        replay, "openai", BODIES[RECORDINGS / "openai" / "parallel-wrapper.sse"]
    )
    weather = next(p for p in answer["message"]["parts"] if p["type"] == "tool-get_weather")
    weather.update(state="output-available", output="sunny")
    replay.serve(BODIES[RECORDINGS / "openai" / "text.sse"])
    provider = provider_for("openai", replay.url)
    conversation = [message("user", "Hello"), UIMessage.model_validate(answer["message"])]
    try:
        await collect(provider.stream(ModelRequest(model="recorded", messages=conversation)))
    finally:
        await provider.aclose()
    assert replay.requests[-1]["body"]["input"][1:] == [
        {
            "type": "function_call",
            "call_id": "call_Pa9rL3_0",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_Pa9rL3_0", "output": "sunny"},
    ]


async def test_provider_next_turn_leaves_provider_executed_calls_to_the_provider(
    replay: ReplayServer,
) -> None:
    """A web search the API ran is shown, never sent back as a function call of ours
    (the API has no such function and would refuse the request)."""
    body = await next_request(replay, "openai", BODIES[RECORDINGS / "openai" / "web-search.sse"])
    kinds = [item.get("type") for item in body["input"]]
    assert "function_call" not in kinds
    assert "function_call_output" not in kinds


# --------------------------------------------------------------------------- without Node

# What the streams must give, checked on the bridge alone (the suite above needs
# Node; these run everywhere): recording -> summary field -> expected value.
BRIDGE_FACTS: list[tuple[str, str, Any]] = [
    ("openai/rotating-item-ids.sse", "text", "The answer is shown once."),
    ("openai/reasoning-rotating-ids.sse", "reasoning", ["Thinking it over."]),
    ("openai-chat/mistral-content-parts.sse", "reasoning", ["Compute 6*7. It is 42."]),
    ("openai-chat/mistral-content-parts.sse", "text", "6 \u00d7 7 = 42."),
    ("anthropic/no-event-lines.sse", "text", "Served by a compatible endpoint."),
    ("anthropic/web-search.sse", "text", "It is sunny, 24 \u00b0C."),
    ("anthropic/unknown-block-and-event.sse", "errors", []),
]


@pytest.mark.parametrize(
    ("name", "field", "expected"), BRIDGE_FACTS, ids=[f"{n}:{f}" for n, f, _ in BRIDGE_FACTS]
)
async def test_provider_recorded_stream_gives_the_expected_answer(
    replay: ReplayServer, name: str, field: str, expected: Any
) -> None:
    answer = summary(await bridge_answer(replay, name.split("/")[0], BODIES[RECORDINGS / name]))
    assert answer[field] == expected


async def test_provider_nested_error_event_shows_the_providers_message(
    replay: ReplayServer,
) -> None:
    answer = await bridge_answer(
        replay, "openai", BODIES[RECORDINGS / "openai/error-mid-stream.sse"]
    )
    (error,) = answer["errors"]
    assert error.endswith("The server had an error processing your request.")
    assert "unknown error" not in error


async def test_provider_parallel_wrapper_becomes_its_calls(replay: ReplayServer) -> None:
    answer = summary(
        await bridge_answer(replay, "openai", BODIES[RECORDINGS / "openai/parallel-wrapper.sse"])
    )
    assert [(tool["name"], tool["input"]) for tool in answer["tools"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"timezone": "Europe/Paris"}),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "openai/malformed-event.sse",
        "openai-chat/malformed-chunk.sse",
        "anthropic/malformed-event.sse",
    ],
)
async def test_provider_malformed_event_keeps_the_other_calls(
    replay: ReplayServer, name: str
) -> None:
    answer = summary(await bridge_answer(replay, name.split("/")[0], BODIES[RECORDINGS / name]))
    assert len(answer["errors"]) == 1
    assert [tool["name"] for tool in answer["tools"]] == ["get_weather", "get_time"]
