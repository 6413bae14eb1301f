"""Letting a turn in: the generation limits around starting it."""

from __future__ import annotations

from bridge.chat.operations import start_generation
from bridge.generation.plan import Generation
from bridge.services import Services
from protocol.messages import ChatRequest


async def start_admitted(services: Services, chat_request: ChatRequest, user: str) -> Generation:
    """start_generation within the user's and the process's concurrent generation limits
    (429 past them); the slot is held until the generation ends."""
    with services.limits.generations.reserve(user) as slot:
        generation = await start_generation(services, chat_request, user)
        slot.generation = generation
    return generation
