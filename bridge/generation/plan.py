"""What a generation is: the turn it answers (planned by the chat layer from the stored
history), its plan (model, tools, the approval answers to carry out), the handle of a
running generation, and where a taken-over one goes on from."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from bridge.generation.inbox import SteeringInbox
from bridge.generation.reattach import Reattached
from bridge.observe import tracing
from bridge.providers.base import Provider
from bridge.store.base import GenerationInfo
from bridge.tools import ToolBox
from protocol.assembler import MessageAssembler
from protocol.messages import StepStartUIPart, UIMessage

TOOL_RUN_DATA_TYPE = "data-tool-run"
"""The marker written to the log before a server tool starts (takeover: started or not)."""


@dataclass(frozen=True, slots=True)
class Turn:
    history: list[UIMessage]
    """The conversation as stored when the generation begins (the continued assistant
    message included)."""
    base: list[UIMessage]
    """`history` without the continued assistant message: the answer is appended to it."""
    continued: UIMessage | None
    """The assistant message this generation continues (tool outputs, approvals)."""
    message_id: str


@dataclass(frozen=True, slots=True)
class Continuation:
    """A request answering the tool calls of the stored last assistant message."""

    base: list[UIMessage]
    stored: UIMessage
    """The assistant message as the server stored it."""
    sent: UIMessage
    """The client's copy, carrying its answers."""


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    tool_call_id: str
    tool_name: str
    input: Any
    approved: bool
    reason: str | None
    provider_executed: bool = False
    """A call the provider runs itself once approved (the bridge only passes the answer on)."""


@dataclass(slots=True)
class GenerationPlan:
    info: GenerationInfo
    turn: Turn
    provider: Provider
    model: str
    """The provider's own model name."""
    model_id: str
    """The "provider:model" string, reported in message metadata."""
    request_data: dict[str, Any] = field(default_factory=dict)
    tools: ToolBox = field(default_factory=ToolBox)
    decisions: list[ApprovalDecision] = field(default_factory=list)
    """Approval answers of a continuation, carried out before the model is called."""
    user: str | None = None
    """The user whose request started the generation (tools see it in ToolContext)."""

    def dump(self) -> bytes:
        """What a takeover needs to go on with this generation in another process (stored
        by `begin_generation`); the history itself is in the store already."""
        continued = self.turn.continued
        return orjson.dumps(
            {
                "v": 1,
                "model": self.model_id,
                "user": self.user,
                "requestData": self.request_data,
                "messageId": self.turn.message_id,
                "createdAt": self.info.created_at,
                "continued": continued is not None,
                "firstStep": sum(isinstance(p, StepStartUIPart) for p in continued.parts)
                if continued
                else 0,
            }
        )


class Generation:
    """A running generation, as seen by the request that started it (and by the runner,
    which owns its lifetime)."""

    def __init__(self, plan: GenerationPlan) -> None:
        self.plan = plan
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolves once the model accepted the request or anything was streamed; fails
        with the ProviderError when the very first call was refused."""
        self.done = asyncio.Event()
        self.prelude_end = 0
        """Offsets 1..prelude_end rebuild the continued message for replays; a reader that
        holds the message already (the request that continued it) skips them."""
        self.scope = anyio.CancelScope()
        """The producer's scope: cancelled by a stop, a writer failure, a hand-over."""
        self.handing_over = False
        self.epoch = 1
        self.started_at = time.monotonic()
        self.links = tracing.request_link()
        """The HTTP request that started it (empty for a takeover): linked, not parent."""
        self.taken_over = False
        self.steering: SteeringInbox | None = None
        self.error: BaseException | None = None
        """What the answer ended with when it ended in an error (provider, internal, time
        limit): the embedder's `on_error` hook gets it."""

    @property
    def generation_id(self) -> str:
        return self.plan.info.generation_id


@dataclass(slots=True)
class Resumption:
    """Where a taken-over generation goes on from (see bridge/chat/takeover.py)."""

    epoch: int
    next_offset: int
    message: UIMessage
    """The assistant message rebuilt from the log."""
    step_open: bool
    """The log ends inside a step (no `finish-step` after the last `start-step`)."""
    tools_begun: bool
    """The open step got as far as its tools (a `data-tool-run` or a tool result)."""
    started_tools: frozenset[str]
    """Tool calls whose `data-tool-run` marker is in the log."""
    first_step: int
    """Steps the message had before this generation began (a continued message's)."""
    open_text: str | None = None
    """The chunk id of the open step's text part when that part, still streaming, is all the
    step produced: the step can be continued from its text (an assistant prefill) where
    the provider accepts one, instead of re-run (bridge/generation/prefill.py)."""
    reattached: Reattached | None = None
    """The open step's response, when the provider can read it again by id: the step goes
    on from it instead of being re-run (bridge/generation/reattach.py)."""
    assembler: MessageAssembler | None = None
    """The assembler that folded the log, set with `open_text` or `reattached`: it knows the
    open parts."""
