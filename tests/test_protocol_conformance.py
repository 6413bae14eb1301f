"""protocol against the real AI SDK client (ai@7.0.173, run by tests/node).

(a) Every chunk class, as encode_chunk writes it, passes the client's `uiMessageChunkSchema`;
    parse_chunk accepts and rejects what the client does (known differences listed).
(b) MessageAssembler builds, after every chunk, the same message as the client's
    `readUIMessageStream` (the state machine Chat uses), for hand-written and random chunk
    sequences, continuations of an existing message, and sequences the client rejects.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from protocol import chunks as c
from protocol.assembler import AssemblyError, MessageAssembler
from protocol.chunks import UIMessageChunk, encode_chunk, parse_chunk
from protocol.messages import UIMessage
from tests.node_harness import NodeHarness, node_fixture  # noqa: F401
from tests.test_protocol_assembler import random_chunks, text_block
from tests.test_protocol_chunks import FULL, MINIMAL

pytestmark = pytest.mark.node


# --- (a) the schema ------------------------------------------------------------------------------


def test_every_chunk_class_passes_the_client_schema(node: NodeHarness) -> None:
    examples = [chunk for chunk, _ in MINIMAL] + [chunk for chunk, _ in FULL]
    assert len({type(chunk) for chunk in examples}) == 30
    # The exact bytes we send, not a re-serialisation.
    encoded = [encode_chunk(chunk).decode() for chunk in examples]
    out = node.schema_check(encoded)
    failures = [(encoded[i], out["results"][i].get("reason")) for i in out["failed"]]
    assert out["ok"], failures
    for text, result in zip(encoded, out["results"], strict=True):
        assert result["value"] == orjson.loads(text)  # nothing dropped or rewritten


# (JSON text, accepted by the client?)
EDGE_CASES: list[tuple[str, bool]] = [
    ('{"type":"start"}', True),
    ('{"type":"start","messageId":null}', False),
    ('{"type":"start","messageMetadata":null}', True),
    ('{"type":"finish","messageMetadata":null}', True),
    ('{"type":"finish","finishReason":null}', False),
    ('{"type":"finish","finishReason":"interrupted"}', True),
    ('{"type":"finish","finishReason":"done"}', False),
    ('{"type":"text-delta","id":"t","delta":"x","extra":{"a":null}}', True),
    ('{"type":"text-delta","id":"t"}', False),
    ('{"type":"text-delta","id":1,"delta":"x"}', False),
    ('{"type":"text-start","id":"t","providerMetadata":null}', False),
    ('{"type":"text-start","id":"t","providerMetadata":{"x":1}}', False),
    ('{"type":"text-start","id":"t","providerMetadata":{"x":{"y":null}}}', True),
    ('{"type":"tool-input-available","toolCallId":"a","toolName":"b"}', False),
    ('{"type":"tool-input-available","toolCallId":"a","toolName":"b","input":null}', True),
    ('{"type":"tool-input-start","toolCallId":"a","toolName":"b","dynamic":"true"}', False),
    ('{"type":"tool-input-start","toolCallId":"a","toolName":"b","title":null}', False),
    ('{"type":"tool-output-available","toolCallId":"a"}', False),
    (
        '{"type":"tool-approval-request","approvalId":"a","toolCallId":"b",'
        '"approvalDescriptor":null,"inputSchemaInput":null}',
        True,
    ),
    ('{"type":"data-x"}', False),
    ('{"type":"data-x","data":null}', True),
    ('{"type":"data-x","data":1,"id":null}', False),
    ('{"type":"data-x","data":1,"transient":null}', False),
    ('{"type":"message-metadata"}', False),
    ('{"type":"message-metadata","messageMetadata":null}', True),
    (
        '{"type":"text-end","id":"t","citations":[{"source":{"type":"source","sourceType":"url",'
        '"id":"s","url":"u"},"startIndex":-1}]}',
        False,
    ),
    (
        '{"type":"text-end","id":"t","citations":[{"source":{"type":"source","sourceType":"url",'
        '"id":"s","url":"u","title":null}}]}',
        False,
    ),
    ('{"type":"steering-message","id":"s","parts":[{"type":"reasoning","text":"x"}]}', False),
    ('{"type":"text"}', False),
    ('{"id":"x"}', False),
    ("[1]", False),
]

# Where parse_chunk is deliberately stricter than ai@7.0.173: the client's check is only
# `startsWith('data-')`, so it takes a data chunk without a name; we never write one.
STRICTER = {'{"type":"data-","data":1}'}


def _accepted(text: str) -> bool:
    try:
        parse_chunk(text)
    except ValueError:
        return False
    return True


def test_parse_chunk_accepts_what_the_client_accepts(node: NodeHarness) -> None:
    cases = [text for text, _ in EDGE_CASES] + sorted(STRICTER)
    out = node.schema_check(cases)
    client = {text: result["ok"] for text, result in zip(cases, out["results"], strict=True)}
    for text, expected in EDGE_CASES:
        assert client[text] is expected, ("the client changed", text)
        assert _accepted(text) is expected, text
    for text in STRICTER:
        assert client[text] is True
        assert _accepted(text) is False


# --- (b) the state machine -----------------------------------------------------------------------


def _writes(chunk: UIMessageChunk, assembler: MessageAssembler, parts_before: int) -> bool:
    """Whether readUIMessageStream yields a snapshot for this chunk (it calls write())."""
    if isinstance(chunk, c.StartStepChunk | c.FinishStepChunk | c.AbortChunk | c.ErrorChunk):
        return False
    if isinstance(chunk, c.DataChunk):
        return not chunk.transient
    if isinstance(chunk, c.FinishChunk | c.MessageMetadataChunk):
        return chunk.message_metadata is not None
    if isinstance(chunk, c.StartChunk):
        return chunk.message_id is not None or chunk.message_metadata is not None
    if isinstance(chunk, c.ResetStepChunk):
        return len(assembler.to_dict()["parts"]) != parts_before
    return True


def _snapshots(
    chunks: list[UIMessageChunk], message: UIMessage | None
) -> tuple[list[Any], str | None]:
    """Our message after every chunk the client snapshots, and the first AssemblyError."""
    assembler = MessageAssembler(message=message, stop_on_error=False)
    snapshots = []
    for chunk in chunks:
        before = len(assembler.to_dict()["parts"])
        try:
            assembler.apply(chunk)
        except AssemblyError as exc:
            return snapshots, str(exc)
        if _writes(chunk, assembler, before):
            snapshots.append(orjson.loads(orjson.dumps(assembler.to_dict())))
            assembler.message  # noqa: B018 (a valid UIMessage at every step)
    return snapshots, None


def _approval_requested() -> list[UIMessageChunk]:
    return [
        c.StartChunk(message_id="m1"),
        c.StartStepChunk(),
        c.ToolInputStartChunk(tool_call_id="c1", tool_name="deleteFile"),
        c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta='{"path": "/tm'),
        c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta='p/x"}'),
        c.ToolInputAvailableChunk(
            tool_call_id="c1", tool_name="deleteFile", input={"path": "/tmp/x"}
        ),
        c.ToolApprovalRequestChunk(approval_id="a1", tool_call_id="c1", reason="deletes"),
        c.FinishStepChunk(),
        c.FinishChunk(finish_reason="tool-calls"),
    ]


def _approved_message() -> UIMessage:
    assembler = MessageAssembler()
    for chunk in _approval_requested():
        assembler.apply(chunk)
    data = assembler.to_dict()
    data["parts"][1]["state"] = "approval-responded"
    data["parts"][1]["approval"] = {"id": "a1", "approved": True, "reason": "ok"}
    return UIMessage.model_validate(data)


SCENARIOS: dict[str, tuple[list[UIMessageChunk], UIMessage | None]] = {
    "text": (
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            *text_block("t1", "Hel", "lo 😀"),
            c.FinishStepChunk(),
            c.FinishChunk(finish_reason="stop"),
        ],
        None,
    ),
    "reasoning-and-sources": (
        [
            c.StartChunk(message_id="m1", message_metadata={"model": "x"}),
            c.StartStepChunk(),
            c.ReasoningStartChunk(id="r"),
            c.ReasoningDeltaChunk(id="r", delta="hm"),
            c.ReasoningEndChunk(id="r", provider_metadata={"a": {"sig": "s"}}),
            *text_block("t", "See"),
            c.SourceUrlChunk(source_id="s1", url="https://a.example", title="A"),
            c.SourceDocumentChunk(source_id="s2", media_type="text/plain", title="D"),
            c.FileChunk(url="data:text/plain;base64,SGk=", media_type="text/plain"),
            c.ReasoningFileChunk(url="https://a.example/r.png", media_type="image/png"),
            c.CustomChunk(kind="openai.thing"),
            c.SteeringMessageChunk(id="u2", parts=[{"type": "text", "text": "also"}]),
            c.FinishChunk(finish_reason="stop", message_metadata={"usage": {"out": 3}}),
        ],
        None,
    ),
    "tools-multi-step": (
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            c.ToolInputStartChunk(tool_call_id="c1", tool_name="weather"),
            *(
                c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta=d)
                for d in ['{"ci', 'ty": "Par', 'is", "days": [1, ', "2], ", '"ok": tr', "ue}"]
            ),
            c.ToolInputAvailableChunk(
                tool_call_id="c1",
                tool_name="weather",
                input={"city": "Paris", "days": [1, 2], "ok": True},
            ),
            c.ToolOutputAvailableChunk(tool_call_id="c1", output={"p": 1}, preliminary=True),
            c.ToolOutputAvailableChunk(
                tool_call_id="c1", output={"temp": 20}, provider_metadata={"x": {"y": 1}}
            ),
            c.ToolInputStartChunk(
                tool_call_id="c2",
                tool_name="mcp",
                dynamic=True,
                input_encoding="text",
                title="M",
                tool_metadata={"s": 1},
            ),
            c.ToolInputDeltaChunk(tool_call_id="c2", input_text_delta="raw"),
            c.ToolInputErrorChunk(
                tool_call_id="c2", tool_name="mcp", input="raw", error_text="bad input"
            ),
            c.FinishStepChunk(),
            c.StartStepChunk(),
            c.ToolOutputErrorChunk(tool_call_id="c1", error_text="late"),
            *text_block("t2", "It is 20°C."),
            c.FinishStepChunk(),
            c.FinishChunk(finish_reason="stop"),
        ],
        None,
    ),
    "approval-requested": (_approval_requested(), None),
    "approval-continued": (
        [
            c.StartChunk(message_id="m1"),
            c.ToolOutputAvailableChunk(tool_call_id="c1", output={"deleted": True}),
            c.StartStepChunk(),
            *text_block("t1", "Deleted."),
            c.FinishStepChunk(),
            c.FinishChunk(finish_reason="stop"),
        ],
        _approved_message(),
    ),
    "server-decided-approval": (
        [
            c.StartChunk(message_id="m1"),
            c.ToolInputAvailableChunk(tool_call_id="c1", tool_name="rm", input={}),
            c.ToolApprovalRequestChunk(
                approval_id="a1",
                tool_call_id="c1",
                is_automatic=True,
                approval_descriptor={"risk": 1},
                input_schema_input={},
            ),
            c.ToolApprovalResponseChunk(
                approval_id="a1",
                approved=False,
                reason="policy",
                provider_executed=True,
                provider_metadata={"p": {}},
            ),
            c.ToolOutputDeniedChunk(tool_call_id="c1"),
        ],
        None,
    ),
    "data-parts": (
        [
            c.StartChunk(message_id="m1"),
            c.DataChunk(type="data-status", id="s", data={"stage": 1}),
            c.DataChunk(type="data-log", data="a"),
            c.DataChunk(type="data-status", id="s", data={"stage": 2}),
            c.DataChunk(type="data-toast", id="t", data="x", transient=True),
            c.DataChunk(type="data-flag", data=None, transient=False),
        ],
        None,
    ),
    "reset-step-and-metadata": (
        [
            c.StartChunk(message_id="m1", message_metadata={"a": {"b": 1}, "l": [1]}),
            c.StartStepChunk(),
            *text_block("t0", "kept"),
            c.FinishStepChunk(),
            c.StartStepChunk(),
            c.TextStartChunk(id="t1"),
            c.TextDeltaChunk(id="t1", delta="x"),
            c.ToolInputStartChunk(tool_call_id="c1", tool_name="t"),
            c.ResetStepChunk(),
            c.ResetStepChunk(),
            c.MessageMetadataChunk(message_metadata={"a": {"c": 2}, "l": [2]}),
            *text_block("t2", "retry"),
            c.FinishChunk(message_metadata={"a": {"b": 3}}),
        ],
        None,
    ),
    "error-mid-text": (
        [
            c.StartChunk(message_id="m1"),
            c.StartStepChunk(),
            c.TextStartChunk(id="t"),
            c.TextDeltaChunk(id="t", delta="part"),
            c.ErrorChunk(error_text="overloaded"),
            c.FinishStepChunk(),
            c.FinishChunk(finish_reason="error"),
        ],
        None,
    ),
    "continuation-of-streaming-input": (
        [
            c.StartChunk(message_id="m1"),
            c.ToolInputDeltaChunk(tool_call_id="c1", input_text_delta='b"}'),
            c.DataChunk(type="data-s", id="s", data="done"),
        ],
        UIMessage.model_validate(
            {
                "id": "m1",
                "role": "assistant",
                "metadata": {"x": 1},
                "parts": [
                    {"type": "step-start"},
                    {"type": "data-s", "id": "s", "data": "working"},
                    {
                        "type": "tool-lookup",
                        "toolCallId": "c1",
                        "state": "input-streaming",
                        "input": {"q": "a"},
                        "rawInput": '{"q": "a',
                    },
                ],
            }
        ),
    ),
    # Rejected by the client's state machine (compared up to the error, message included).
    "client-error-text-delta": (
        [c.StartChunk(message_id="m1"), c.TextDeltaChunk(id="nope", delta="x")],
        None,
    ),
    "client-error-unknown-tool": (
        [c.StartChunk(message_id="m1"), c.ToolOutputAvailableChunk(tool_call_id="c9", output=1)],
        None,
    ),
    "client-error-unknown-approval": (
        [
            c.StartChunk(message_id="m1"),
            c.ToolInputAvailableChunk(tool_call_id="c1", tool_name="t", input=None),
            c.ToolApprovalResponseChunk(approval_id="zz", approved=True),
        ],
        None,
    ),
}


def _random_cases() -> dict[str, tuple[list[UIMessageChunk], UIMessage | None]]:
    cases: dict[str, tuple[list[UIMessageChunk], UIMessage | None]] = {}
    for seed in range(24):
        cases[f"random-{seed}"] = (random_chunks(random.Random(seed)), None)
    for seed in range(12):
        rng = random.Random(1000 + seed)
        prior = MessageAssembler()
        for chunk in random_chunks(rng):
            prior.apply(chunk)
        message = prior.message
        chunks = random_chunks(rng)
        for _ in range(rng.choice([0, 1, 2])):  # drop chunks: some runs hit client errors
            if len(chunks) > 2:
                del chunks[rng.randrange(1, len(chunks))]
        calls = [part.tool_call_id for part in message.tool_parts()]
        if calls:
            chunks.insert(
                1,
                c.ToolOutputAvailableChunk(
                    tool_call_id=rng.choice(calls), output={"continued": True}
                ),
            )
        cases[f"random-continuation-{seed}"] = (chunks, message)
    return cases


CASES = {**SCENARIOS, **_random_cases()}


@pytest.fixture(scope="module")
def client_results(node: NodeHarness) -> dict[str, Any]:
    """readUIMessageStream's snapshots for every case (node runs in parallel)."""

    def run(name: str) -> Any:
        chunks, message = CASES[name]
        encoded = [encode_chunk(chunk).decode() for chunk in chunks]
        prior = message.dump() if message is not None else None
        return node.fold_chunks(encoded, prior, "--allow-client-errors")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_assembler_matches_the_client(name: str, client_results: dict[str, Any]) -> None:
    chunks, message = CASES[name]
    ours, error = _snapshots(chunks, message)
    client = client_results[name]
    client_error = (client["streamError"] or {}).get("message")
    assert error == client_error
    assert len(ours) == len(client["messages"])
    for index, (mine, theirs) in enumerate(zip(ours, client["messages"], strict=True)):
        assert mine == theirs, f"snapshot {index}"
    if name.startswith("client-error"):
        assert error is not None
