"""The way in: every route and WebSocket frame learns who is calling, and may act on a
chat, through these functions (README, "Security model")."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from bridge.chat.operations import authorize, check_chat_id
from bridge.services import Services


async def identify(services: Services, connection: HTTPConnection, cost: float = 1.0) -> str:
    """The authenticated caller, counted against the per-user request rate."""
    user = await services.auth.user_for(connection)
    services.limits.requests.check(user, cost)
    return user


async def caller(services: Services, connection: HTTPConnection, chat_id: str) -> str:
    """The authenticated user, checked against the chat's owner."""
    check_chat_id(chat_id)
    user = await identify(services, connection)
    await authorize(services, user, chat_id)
    return user
