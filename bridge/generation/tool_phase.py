"""The tool phase of a step: approvals asked for, approval answers carried out, server
tools run (each after its `data-tool-run` marker is stored), client tools left to the
browser, and the unfinished tools of a taken-over step finished."""

from __future__ import annotations

import functools
from typing import Any

import anyio

from bridge.generation.emitter import Emitter
from bridge.generation.ids import new_approval_id
from bridge.generation.plan import TOOL_RUN_DATA_TYPE, GenerationPlan
from bridge.generation.transform import InputCheck, StepTransformer
from bridge.observe import tracing
from bridge.settings import Settings
from bridge.tools.declare import ToolInputError
from bridge.tools.execute import run_tool
from protocol.chunks import (
    DataChunk,
    ToolApprovalRequestChunk,
    ToolOutputDeniedChunk,
    ToolOutputErrorChunk,
)
from protocol.messages import DynamicToolUIPart, StepStartUIPart, ToolUIPart, UIMessage

TOOL_INTERRUPTED_TEXT = (
    "The tool was interrupted: the server running it stopped. It may or may not have taken effect."
)

_Call = tuple[str, str, Any]
"""A tool call to run: (tool call id, tool name, input)."""


class ToolPhase:
    """Runs the server tools of a step, within the settings' timeouts."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._threads = anyio.CapacityLimiter(settings.bridge_tool_threads)
        """Sync tools' own threads (BRIDGE_TOOL_THREADS), never the server's shared pool."""

    async def handle_tool_calls(
        self, plan: GenerationPlan, transformer: StepTransformer, emit: Emitter
    ) -> bool | None:
        """Run server tools, ask for approvals, leave client tools to the browser.

        None: the step called no tool (the answer is done). True: results were added, call
        the model again. False: the turn waits for the client (approval or browser tool)."""
        to_run: list[_Call] = []
        waiting = bool(transformer.provider_approvals)
        for call in transformer.tool_calls:
            if call.provider_executed:
                continue
            tool = plan.tools.get(call.tool_name)
            tool_input = transformer.parsed_inputs[call.tool_call_id]
            if tool is None or tool.client_side:
                waiting = True
            elif tool.requires_approval(tool_input):
                emit(
                    ToolApprovalRequestChunk(
                        approval_id=new_approval_id(), tool_call_id=call.tool_call_id
                    )
                )
                waiting = True
            else:
                to_run.append((call.tool_call_id, call.tool_name, tool_input))
        await self.execute(plan, to_run, emit)
        if waiting:
            return False
        if to_run or transformer.input_errors:
            return True
        return None

    async def carry_out_decisions(self, plan: GenerationPlan, emit: Emitter) -> None:
        """Approved tools run (with the stored input), denied ones are marked denied, before
        the model hears about them."""
        approved = []
        for decision in plan.decisions:
            if decision.provider_executed and decision.approved:
                continue  # the provider runs it, told on the next request
            if decision.approved:
                approved.append((decision.tool_call_id, decision.tool_name, decision.input))
            else:
                emit(ToolOutputDeniedChunk(tool_call_id=decision.tool_call_id))
        await self.execute(plan, approved, emit)

    async def finish_tools(
        self, plan: GenerationPlan, message: UIMessage, started: frozenset[str], emit: Emitter
    ) -> bool | None:
        """The tool calls of the message's last step that have no result yet: one whose
        `data-tool-run` is in the log gets an "interrupted" error (it may have had effects;
        an idempotent tool runs again); one never started runs now; denied ones are marked.
        Returns like `handle_tool_calls`: None nothing to do, True results for the model,
        False the turn waits for the client."""
        last_step = _last_step_parts(message)
        to_run: list[_Call] = []
        waiting = False
        results = False
        for part in last_step:
            if not isinstance(part, ToolUIPart | DynamicToolUIPart):
                continue
            if part.provider_executed:
                # A call of the provider's own waiting for the user's approval.
                waiting = waiting or part.state == "approval-requested"
                continue
            call_id = part.tool_call_id
            tool = plan.tools.get(part.tool_name)
            if part.state in ("output-available", "output-error", "output-denied"):
                results = results or not (tool is None or tool.client_side)
                continue
            approval = part.approval
            if part.state == "approval-responded" and approval is not None:
                if not approval.approved:
                    emit(ToolOutputDeniedChunk(tool_call_id=call_id))
                    results = True
                    continue
            elif part.state == "approval-requested" or tool is None or tool.client_side:
                waiting = True
                continue
            if call_id in started and not (tool is not None and tool.idempotent):
                emit(ToolOutputErrorChunk(tool_call_id=call_id, error_text=TOOL_INTERRUPTED_TEXT))
                results = True
                continue
            to_run.append((call_id, part.tool_name, part.input))
        await self.execute(plan, to_run, emit)
        if waiting:
            return False
        if to_run or results:
            return True
        return None

    async def execute(self, plan: GenerationPlan, calls: list[_Call], emit: Emitter) -> None:
        """Run server tools concurrently, each within its timeout.

        Every call's `data-tool-run` marker is acknowledged by the store before any tool
        starts: a takeover then knows the tool may have run and never runs it again."""
        if not calls:
            return
        settings = self._settings
        runnable: list[tuple[str, Any, dict[str, Any]]] = []
        for call_id, name, tool_input in calls:
            tool = plan.tools.get(name)
            if tool is None or tool.client_side:
                emit(
                    ToolOutputErrorChunk(
                        tool_call_id=call_id, error_text=f"The tool {name} is not available."
                    )
                )
                continue
            try:
                arguments = tool.validate(tool_input)
            except ToolInputError as exc:
                emit(
                    ToolOutputErrorChunk(
                        tool_call_id=call_id, error_text=f"Invalid input for {name}: {exc}"
                    )
                )
                continue
            emit(
                DataChunk(
                    type=TOOL_RUN_DATA_TYPE,
                    id=call_id,
                    transient=True,
                    data={"toolCallId": call_id, "status": "running"},
                )
            )
            runnable.append((call_id, tool, arguments))
        if not runnable:
            return
        await emit.writer.flushed()
        async with anyio.create_task_group() as group:
            for call_id, tool, arguments in runnable:
                group.start_soon(
                    functools.partial(
                        _traced_tool,
                        tool,
                        call_id,
                        arguments,
                        emit=emit,
                        time_limit=tool.timeout or settings.bridge_tool_timeout_seconds,
                        expose_errors=settings.bridge_expose_errors,
                        threads=self._threads,
                        user=plan.user,
                    )
                )


def input_check(plan: GenerationPlan) -> InputCheck:
    """The step transformer's check of a tool call's input against the plan's tools."""

    def check(name: str, tool_input: dict[str, Any]) -> str | None:
        tool = plan.tools.get(name)
        if tool is None:
            offered = ", ".join(spec.name for spec in plan.tools.specs) or "none"
            return f"There is no tool named {name!r} (tools: {offered})."
        try:
            tool.validate(tool_input)
        except ToolInputError as exc:
            return f"Invalid input for {name}: {exc}"
        return None

    return check


def _last_step_parts(message: UIMessage) -> list[Any]:
    """The parts after the message's last step-start (all of them when it has none)."""
    parts = list(message.parts)
    for index in range(len(parts) - 1, -1, -1):
        if isinstance(parts[index], StepStartUIPart):
            return parts[index + 1 :]
    return parts


async def _traced_tool(tool: Any, call_id: str, arguments: Any, **options: Any) -> None:
    with tracing.tool_span(tool.name, call_id):
        await run_tool(tool, call_id, arguments, **options)
