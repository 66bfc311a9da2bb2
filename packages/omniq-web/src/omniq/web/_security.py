"""Who may see the dashboard (the auth hook) and CSRF protection of its actions."""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request

__all__ = ["AuthCheck", "BasicAuth", "auth_from_env", "check_auth", "csrf_ok"]

CSRF_COOKIE = "omniq_csrf"
CSRF_FIELD = "csrf"

AuthCheck = Callable[[Request], bool | Awaitable[bool]]
"""An auth hook: given the request, True lets it through (may be async)."""


class BasicAuth:
    """HTTP basic authentication against one user name and password."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password='***')"

    def __call__(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.username.encode()) & hmac.compare_digest(
            password.encode(), self.password.encode()
        )


def auth_from_env(env: Mapping[str, str] | None = None) -> BasicAuth | None:
    """``BasicAuth`` from ``OMNIQ_WEB_USERNAME``/``OMNIQ_WEB_PASSWORD`` (None unless the
    password is set; the user name defaults to ``admin``)."""
    env = os.environ if env is None else env
    password = env.get("OMNIQ_WEB_PASSWORD")
    if not password:
        return None
    return BasicAuth(env.get("OMNIQ_WEB_USERNAME") or "admin", password)


async def check_auth(auth: AuthCheck | None, request: Request) -> bool:
    if auth is None:
        return True
    ok = auth(request)
    if inspect.isawaitable(ok):
        ok = await ok
    return bool(ok)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(request: Request, form_token: str | None) -> bool:
    """True if the form (or ``X-CSRF-Token`` header) repeats the cookie's token."""
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = form_token or request.headers.get("x-csrf-token")
    return bool(cookie and sent) and hmac.compare_digest(str(cookie), str(sent))
