"""413 for request bodies over `settings.max_body_bytes`, declared or streamed.

A declared `Content-Length` over the limit is refused before any byte is read. A chunked body is
read up to the limit and refused as soon as it goes over; a body within the limit is handed to
the app whole, so neither FastAPI nor the mounted dashboard ever sees more than the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    """Refuses request bodies larger than `max_bytes` with a JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await _answer(scope, receive, send, 400, "Content-Length is not a number")
                return
            if too_large:
                await _answer(scope, receive, send, 413, self._message())
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _answer(scope, receive, send, 413, self._message())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _message(self) -> str:
        return f"request body is over the limit of {self.max_bytes} bytes"


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the client's disconnect

    return replay


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    # The body may be left unread: close the connection rather than read the rest of it.
    response = JSONResponse({"detail": detail}, status, headers={"connection": "close"})
    await response(scope, receive, send)
