"""Server-minted identifiers."""

from __future__ import annotations

import secrets


def new_generation_id() -> str:
    """A resume id: 192 random bits, URL-safe. Knowing it is enough to read a generation,
    so it must be unguessable."""
    return "gen_" + secrets.token_urlsafe(24)


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(12)


def new_approval_id() -> str:
    """Unguessable: an approval answer must name an approval the server really issued."""
    return "apr_" + secrets.token_urlsafe(16)
