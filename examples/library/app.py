# ruff: noqa: I001  (the README snippet below keeps its own import order)
"""Library mode: the bridge mounted under /chat in a FastAPI app of your own, behind your
own sign-in. Run it with `uvicorn examples.library.app:app` from the repository's root;
`GET /login?user=alice` signs a browser in, then `POST /chat/api/chat` answers it.

The part between the `README` markers is README's "Use it as a library" snippet, verbatim
(tests/test_examples.py checks that they agree and runs this app)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from examples.library.yours import SESSION_COOKIE, my_agent_provider, my_db, my_sessions

# README: library
from contextlib import asynccontextmanager
from fastapi import FastAPI
from bridge.app import Bridge
from bridge.access.identity import CallableAuth
from bridge.settings import Settings

async def current_user(connection) -> str:          # your own session check
    return await my_sessions.user_of(connection)      # "" or raise: 401

async def save(chat_id, message, usage, user):        # finished messages, in your database
    await my_db.save_message(chat_id, message, usage, user)

bridge = Bridge(
    Settings(),                                        # BRIDGE_*, REDIS_URL; or `store=...`
    auth=CallableAuth(current_user),
    providers={"agent": my_agent_provider},            # `agent:<any model>`, unlisted
    on_finish=save,
)

@asynccontextmanager
async def lifespan(app: FastAPI):
    async with bridge.lifespan(app):                   # the store, writer, reader, drain
        yield

app = FastAPI(lifespan=lifespan)
bridge.install(app, prefix="/chat")                   # POST /chat/api/chat, resume, stop, ...
# README: end


@app.get("/login")
async def login(user: str) -> JSONResponse:
    """Your sign-in, reduced to its effect: a session cookie."""
    response = JSONResponse({"user": user})
    response.set_cookie(SESSION_COOKIE, my_sessions.sign_in(user), httponly=True, samesite="lax")
    return response
