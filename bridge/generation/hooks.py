"""What an embedding app hears of each generation's life: `GenerationHooks` (before, on
error, on cancel, after) and the older `on_finish` callback.

Hooks observe; they never change a generation. Every call is awaited by the generation
itself and its failures are logged. `before` runs as the generation starts (a stop
cancels it); the others run in the generation's one end, shielded and bounded by
BRIDGE_END_TIMEOUT_SECONDS together with the rest of the end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

OnFinish = Callable[[str, dict[str, Any], dict[str, int] | None, str | None], Awaitable[None]]
"""`on_finish(chat_id, message, usage, user)`: called once a generation's log is closed with
its final assistant message (a dict, as stored), its token usage and the user: an embedding
app saves finished messages in its own database here. Its failures are logged."""

CancelReason = Literal["stop", "shutdown", "handover", "lost"]
"""Why a generation was cancelled: a stop request; the server shut down with nobody to take
over (the log ends with `abort`); a drain handed it over to another process (the log stays
open); the log writer failed (fenced, or the store down past its retries: takeover
decides)."""


@dataclass(frozen=True, slots=True)
class GenerationContext:
    """The generation a hook is called for."""

    chat_id: str
    generation_id: str
    user: str | None
    model_id: str
    """"provider:model"."""
    taken_over: bool
    """This process continues a generation whose producer is gone."""


@dataclass(frozen=True, slots=True)
class GenerationEnd:
    """How a generation ended in this process."""

    outcome: Literal["finished", "error", "aborted"] | None
    """None when the log was left open (handed over, or the writer failed)."""
    message: dict[str, Any] | None
    """The final assistant message as stored (None when the log was left open)."""
    usage: dict[str, int] | None


class GenerationHooks:
    """Override what you need; the defaults do nothing. Pass an instance as
    `Bridge(hooks=...)` (or `create_app(hooks=...)`)."""

    async def before(self, generation: GenerationContext) -> None:
        """The generation starts producing (a new turn, or a takeover in this process)."""

    async def on_error(self, generation: GenerationContext, error: BaseException) -> None:
        """The answer ended with an error (provider, internal, over its time limit); its log
        ends with `error` chunks."""

    async def on_cancel(self, generation: GenerationContext, reason: CancelReason) -> None:
        """The producer was cancelled (see `CancelReason`)."""

    async def after(self, generation: GenerationContext, end: GenerationEnd) -> None:
        """Last of all, whatever the end (after `on_finish`)."""


NO_HOOKS = GenerationHooks()
