"""Stand-ins for what your application already has: its sessions, its database and an
agent. The example's `app.py` uses them exactly as README's library snippet does."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from bridge.providers.demo import DemoProvider

SESSION_COOKIE = "session"


class Sessions:
    """Sign-in sessions: a random cookie value per signed-in user, kept in memory."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}

    def sign_in(self, user: str) -> str:
        session = secrets.token_urlsafe(24)
        self._users[session] = user
        return session

    async def user_of(self, connection: HTTPConnection) -> str:
        """The signed-in user, or "" (the bridge then answers 401)."""
        return self._users.get(connection.cookies.get(SESSION_COOKIE, ""), "")


@dataclass
class Database:
    """Where finished assistant messages go (a list here; your tables in real life)."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    async def save_message(self, chat_id: str, message: Any, usage: Any, user: str) -> None:
        self.messages.append({"chat_id": chat_id, "message": message, "user": user})


my_sessions = Sessions()
my_db = Database()
my_agent_provider = DemoProvider(token_delay=0.005)
"""Any provider or agent (see README, "Bring your own agent"); the scripted demo model here."""
