"""Each transport in one module, all of them readers of the same generation log:
SSE (`sse.py`, the AI SDK's default), WebSocket (`websocket.py`) and long-polling
(`poll.py`). They share the chat operations of `bridge.chats`."""
