"""A pydantic-ai `Agent` behind the bridge (the optional extra `aisdk-bridge[pydantic-ai]`).

    from pydantic_ai import Agent
    from bridge.providers.pydantic_ai import AgentProvider

    agent = Agent("openai:gpt-5.2", tools=[...])
    provider = AgentProvider(agent, name="agent")   # serve it as "agent:<anything>"

The agent keeps its own model, instructions and tool loop; the bridge gives it the
conversation and logs what it streams. One bridge step is one agent run: every model
response of the run streams as text and reasoning blocks, every tool the agent runs shows
as a tool part that the agent executed (`providerExecuted`), with its result. The bridge
never runs those tools itself, and a resumed or taken-over client sees them exactly as
logged. Tools declared to the bridge (approvals, browser tools) are not offered to the
agent: give the agent its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from pydantic_ai import Agent
from pydantic_ai.messages import (
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
    ToolCallPartDelta,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.run import AgentRunResultEvent

from bridge.errors import ProviderError
from bridge.providers import base as ev
from protocol.messages import (
    DynamicToolUIPart,
    ReasoningUIPart,
    SteeringMessageUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
)


class AgentProvider:
    """A `Provider` that runs a pydantic-ai agent for each step."""

    def __init__(self, agent: Agent[Any, Any], *, name: str = "agent") -> None:
        self.name = name
        self._agent = agent

    async def aclose(self) -> None:
        return None

    async def stream(self, request: ev.ModelRequest) -> AsyncIterator[ev.ProviderEvent]:
        history, prompt = to_agent_messages(request.messages)
        blocks = _Blocks()
        try:
            async with self._agent.run_stream_events(
                prompt, message_history=history, instructions=request.system
            ) as run:
                yield ev.StreamOpened()
                async for event in run:
                    for out in blocks.translate(event):
                        yield out
        except ProviderError:
            raise
        except Exception as exc:  # the agent's own failure, as the bridge's provider error
            raise ProviderError(
                f"the agent failed: {type(exc).__name__}", provider=self.name
            ) from exc


class _Blocks:
    """pydantic-ai numbers the parts of each model response from 0; the bridge needs block
    ids unique within its step, so each response of the run gets its own prefix."""

    def __init__(self) -> None:
        self._response = 0
        self._last_index = -1
        self._input_tokens = 0
        self._output_tokens = 0

    def _id(self, index: int) -> str:
        return f"r{self._response}-{index}"

    def translate(self, event: object) -> list[ev.ProviderEvent]:
        if isinstance(event, PartStartEvent):
            if event.index <= self._last_index:
                self._response += 1  # a new model response of the same run
            self._last_index = event.index
            return self._start(event.index, event.part)
        if isinstance(event, PartDeltaEvent):
            return self._delta(event.index, event.delta)
        if isinstance(event, PartEndEvent):
            return self._end(event.index, event.part)
        if isinstance(event, FunctionToolResultEvent):
            return [_tool_result(event.part)]
        if isinstance(event, AgentRunResultEvent):
            usage = event.result.usage
            return [
                ev.StepFinished(
                    finish_reason="stop",
                    usage=ev.Usage(
                        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens
                    ),
                )
            ]
        return []

    def _start(self, index: int, part: object) -> list[ev.ProviderEvent]:
        block = self._id(index)
        if isinstance(part, TextPart):
            out: list[ev.ProviderEvent] = [ev.TextStart(id=block)]
            if part.content:
                out.append(ev.TextDelta(id=block, delta=part.content))
            return out
        if isinstance(part, ThinkingPart):
            out = [ev.ReasoningStart(id=block)]
            if part.content:
                out.append(ev.ReasoningDelta(id=block, delta=part.content))
            return out
        if isinstance(part, ToolCallPart):
            out = [
                ev.ToolInputStart(
                    tool_call_id=part.tool_call_id, tool_name=part.tool_name, provider_executed=True
                )
            ]
            text = _args_text(part.args)
            if text:
                out.append(ev.ToolInputDelta(tool_call_id=part.tool_call_id, delta=text))
            return out
        return []

    def _delta(self, index: int, delta: object) -> list[ev.ProviderEvent]:
        block = self._id(index)
        if isinstance(delta, TextPartDelta) and delta.content_delta:
            return [ev.TextDelta(id=block, delta=delta.content_delta)]
        if isinstance(delta, ThinkingPartDelta) and delta.content_delta:
            return [ev.ReasoningDelta(id=block, delta=delta.content_delta)]
        if isinstance(delta, ToolCallPartDelta) and delta.tool_call_id:
            text = _args_text(delta.args_delta)
            if text:
                return [ev.ToolInputDelta(tool_call_id=delta.tool_call_id, delta=text)]
        return []

    def _end(self, index: int, part: object) -> list[ev.ProviderEvent]:
        block = self._id(index)
        if isinstance(part, TextPart):
            return [ev.TextEnd(id=block)]
        if isinstance(part, ThinkingPart):
            return [ev.ReasoningEnd(id=block)]
        if isinstance(part, ToolCallPart):
            return [
                ev.ToolCall(
                    tool_call_id=part.tool_call_id,
                    tool_name=part.tool_name,
                    input_text=part.args_as_json_str(),
                    provider_executed=True,
                )
            ]
        return []


def _args_text(args: object) -> str:
    if args is None:
        return ""
    if isinstance(args, str):
        return args
    return orjson.dumps(args).decode()


def _tool_result(part: ToolReturnPart) -> ev.ProviderEvent:
    if part.outcome == "success":
        return ev.ToolResult(tool_call_id=part.tool_call_id, output=_jsonable(part.content))
    # failed, denied, interrupted, retried: what the model is told, as the tool's error
    return ev.ToolResult(tool_call_id=part.tool_call_id, error=part.model_response_str())


def _jsonable(value: Any) -> Any:
    """Tool outputs go into JSON chunks: anything orjson cannot write becomes its str()."""
    return orjson.loads(orjson.dumps(value, default=str))


_SETTLED = frozenset({"output-available", "output-error"})


def to_agent_messages(messages: Sequence[UIMessage]) -> tuple[list[ModelMessage], str]:
    """The conversation as pydantic-ai messages, and the last user turn's text as the prompt
    of this run (its history is everything else). A steering message delivered into an
    answer (a `steering-message` part) is a user turn right where it was delivered: the
    run after it has it as its prompt."""
    history: list[ModelMessage] = []
    for message in messages:
        if message.role == "user":
            history.append(_user_turn(message.parts))
        elif message.role == "assistant":
            history += _responses(message)
    # The prompt: the newest user turn (the old order kept for a conversation that ends
    # with an answer, such as a step taken over).
    prompt = ""
    for index in range(len(history) - 1, -1, -1):
        if _prompt_of(history[index]) is not None:
            prompt = _prompt_of(history.pop(index)) or ""
            break
    return history, prompt


def _user_turn(parts: Sequence[Any]) -> ModelRequest:
    text = "".join(p.text for p in parts if isinstance(p, TextUIPart))
    return ModelRequest(parts=[UserPromptPart(content=text)])


def _prompt_of(message: ModelMessage) -> str | None:
    """The text of a user turn (a request holding one user prompt), else None."""
    if not isinstance(message, ModelRequest) or len(message.parts) != 1:
        return None
    part = message.parts[0]
    if not isinstance(part, UserPromptPart) or not isinstance(part.content, str):
        return None
    return part.content


def _responses(message: UIMessage) -> list[ModelMessage]:
    """An assistant message as model responses: each ends at its tool calls, whose returns
    come back in a request; a steering message delivered in it is a user turn there."""
    out: list[ModelMessage] = []
    response_parts: list[Any] = []
    returns: list[Any] = []

    def flush() -> None:
        nonlocal response_parts, returns
        if response_parts:
            out.append(ModelResponse(parts=response_parts))
        if returns:
            out.append(ModelRequest(parts=returns))
        response_parts, returns = [], []

    for part in message.parts:
        if isinstance(part, SteeringMessageUIPart):
            flush()
            out.append(_user_turn(part.parts))
        elif isinstance(part, TextUIPart | ReasoningUIPart) and part.text:
            if returns:
                flush()
            kind = TextPart if isinstance(part, TextUIPart) else ThinkingPart
            response_parts.append(kind(content=part.text))
        elif isinstance(part, ToolUIPart | DynamicToolUIPart) and part.state in _SETTLED:
            call_id, name = part.tool_call_id, part.tool_name
            response_parts.append(
                ToolCallPart(tool_name=name, args=part.input, tool_call_id=call_id)
            )
            content = part.output if part.state == "output-available" else part.error_text
            returns.append(ToolReturnPart(tool_name=name, content=content, tool_call_id=call_id))
    flush()
    return out
