"""Letting a turn in: the generation limits around starting it."""

from __future__ import annotations

from bridge.chat.operations import start_generation
from bridge.generation.plan import Generation
from bridge.services import Services
from protocol.messages import ChatRequest


async def start_admitted(services: Services, chat_request: ChatRequest, user: str) -> Generation:
    """start_generation within the user's and the process's concurrent generation limits
    (429 past them); the slot is held until the generation ends, also when the request
    fails or goes away after the generation began."""
    failure: BaseException | None = None
    with services.limits.generations.reserve(user) as slot:

        def started(generation: Generation) -> None:
            slot.generation = generation

        try:
            generation = await start_generation(services, chat_request, user, started=started)
        except BaseException as exc:
            if slot.generation is None:
                raise  # nothing began: the reservation is released
            failure = exc  # raised below, past the reservation, which keeps the slot
    if failure is not None:
        raise failure
    return generation
