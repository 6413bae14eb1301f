"""Running one tool call: validation, timeout, errors, preliminary outputs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from anyio import from_thread
from pydantic_core import PydanticSerializationError, to_jsonable_python

from bridge.tools.declare import Emit, Tool, ToolContext
from protocol.chunks import ToolOutputAvailableChunk, ToolOutputErrorChunk, UIMessageChunk

logger = logging.getLogger("bridge.tools")


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value)


async def run_tool(
    tool: Tool,
    tool_call_id: str,
    arguments: dict[str, Any],
    *,
    emit: Emit,
    time_limit: float,
    expose_errors: bool,
    threads: anyio.CapacityLimiter,
    user: str | None = None,
) -> bool:
    """Run the call and emit its output chunks; True when it produced an output, False
    when it failed (a `tool-output-error` was emitted). A sync tool runs in a thread of
    `threads` (the tools' own limiter)."""
    assert tool.function is not None
    kwargs = dict(arguments)
    is_sync = not (
        inspect.iscoroutinefunction(tool.function) or inspect.isasyncgenfunction(tool.function)
    )
    if tool.context_parameter is not None:
        # A sync tool runs in a worker thread: its data parts hop back to the event loop.
        def emit_from_thread(chunk: UIMessageChunk) -> None:
            from_thread.run_sync(emit, chunk)

        context_emit: Emit = emit_from_thread if is_sync else emit
        kwargs[tool.context_parameter] = ToolContext(tool_call_id, context_emit, user)
    try:
        with anyio.fail_after(time_limit):
            if inspect.isasyncgenfunction(tool.function):
                output = await _stream_outputs(tool, tool_call_id, kwargs, emit)
            elif inspect.iscoroutinefunction(tool.function):
                output = await tool.function(**kwargs)
            else:
                output = await _in_tool_thread(functools.partial(tool.function, **kwargs), threads)
            payload = _jsonable(output)
    except TimeoutError:
        emit(_error(tool_call_id, f"The tool {tool.name} timed out after {time_limit:g} s."))
        return False
    except PydanticSerializationError:
        emit(_error(tool_call_id, f"The tool {tool.name} returned a value that is not JSON."))
        return False
    except Exception as exc:
        logger.warning("tool %s failed", tool.name, exc_info=True)
        text = f"{type(exc).__name__}: {exc}" if expose_errors else f"The tool {tool.name} failed."
        emit(_error(tool_call_id, text))
        return False
    emit(ToolOutputAvailableChunk(tool_call_id=tool_call_id, output=payload))
    return True


async def _in_tool_thread(call: Callable[[], Any], threads: anyio.CapacityLimiter) -> Any:
    """`call()` in a thread of the tools' own limiter, never the server's shared pool
    (request handling, an embedding app's sync routes). The timeout abandons the call but
    cannot stop its thread: the thread keeps its slot until it returns, so tools that hang
    hold at most `threads` threads and later calls wait for one (within their timeout)."""
    borrower = object()
    await threads.acquire_on_behalf_of(borrower)
    loop = asyncio.get_running_loop()
    lock = threading.Lock()
    state = "pending"  # -> "running" (the thread took it) or "cancelled" (it never will)

    def release() -> None:
        threads.release_on_behalf_of(borrower)

    def run() -> Any:
        nonlocal state
        with lock:
            if state == "cancelled":
                return None
            state = "running"
        try:
            return call()
        finally:
            # The event loop may be gone by then (shutdown): nothing left to release.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(release)

    try:
        # The slot is held above; anyio's limiter must not bound the thread a second time.
        return await anyio.to_thread.run_sync(
            run, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(math.inf)
        )
    except BaseException:
        with lock:
            never_ran = state == "pending"
            if never_ran:
                state = "cancelled"
        if never_ran:
            release()
        raise


async def _stream_outputs(tool: Tool, tool_call_id: str, kwargs: dict[str, Any], emit: Emit) -> Any:
    """Every value but the last is a preliminary output; the last is the result."""
    assert tool.function is not None
    pending: Any = None
    have_value = False
    generator = tool.function(**kwargs)
    try:
        async for value in generator:
            if have_value:
                emit(
                    ToolOutputAvailableChunk(
                        tool_call_id=tool_call_id, output=_jsonable(pending), preliminary=True
                    )
                )
            pending, have_value = value, True
    finally:
        await generator.aclose()
    return pending


def _error(tool_call_id: str, text: str) -> ToolOutputErrorChunk:
    return ToolOutputErrorChunk(tool_call_id=tool_call_id, error_text=text)
