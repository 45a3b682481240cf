"""Bearer-token auth for every route but health, as ASGI middleware (so mounts are covered too).

With `STUDYD_API_TOKEN` set, a request needs `Authorization: Bearer <token>`. Browsers cannot
attach a bearer header to a page load, so the same token is also accepted as the password of
HTTP Basic auth (any user name): opening `/docs` or `/dashboard` prompts for it once and the
browser sends it with every later request. Comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# Liveness and readiness probes must work for orchestrators that hold no token.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
REALM = "studyd"


def presented_token(authorization: str | None) -> str | None:
    """The token in a `Bearer` header or the password of a `Basic` one; None otherwise."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep else None
    return None


def token_matches(presented: str | None, expected: str) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class TokenAuthMiddleware:
    """Answers 401 unless the request carries the configured token (health paths stay open)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        presented = presented_token(Headers(scope=scope).get("authorization"))
        if token_matches(presented, self.token):
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"detail": "missing or wrong bearer token"}, 401)
        # Basic makes browsers prompt (dashboard and docs pages); Chromium reads only the first
        # scheme of a header, so each challenge gets its own header, Basic first.
        basic = f'Basic realm="{REALM}", charset="UTF-8"'
        bearer = f'Bearer realm="{REALM}"'
        response.raw_headers += [
            (b"www-authenticate", basic.encode()),
            (b"www-authenticate", bearer.encode()),
        ]
        await response(scope, receive, send)
