"""Authentication of /api/v1/*: bearer token and HTTP basic, as Alertmanager's http_config sends.

With `auth.read_bearer_token` set, writing alerts and reading incidents take different
credentials: the intake's (which Alertmanager's and Grafana's configuration hold) only writes,
the read token only reads. Without it the intake's credentials do both.

Credentials are compared as SHA-256 digests with `hmac.compare_digest`, so neither the
content nor the length of a secret leaks through timing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from aiohttp import web

from correlator.settings import AuthSettings
from correlator.web.problems import problem_response

# The API and the incident pages (which show alert content) need credentials.
PROTECTED_PREFIXES = ("/api/", "/incidents")
INTAKE_PATH = "/api/v1/alerts"
REALM = "correlator"
# Who the request authenticated as (the basic user, or which token), for what it records.
PRINCIPAL = web.RequestKey("principal", str)


def _digest(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return hashlib.sha256(raw).digest()


def _equal(given: str | bytes, expected: str | bytes) -> bool:
    return hmac.compare_digest(_digest(given), _digest(expected))


class Authenticator:
    """Decides whether an Authorization header carries a configured credential."""

    def __init__(self, settings: AuthSettings) -> None:
        self._bearer = settings.bearer_token.get_secret_value() if settings.bearer_token else None
        self._basic_user = settings.basic_username
        self._basic_password = (
            settings.basic_password.get_secret_value() if settings.basic_password else None
        )
        self._read = (
            settings.read_bearer_token.get_secret_value() if settings.read_bearer_token else None
        )
        self.challenges = []
        if self._bearer is not None or self._read is not None:
            self.challenges.append(f'Bearer realm="{REALM}"')
        if self._basic_user is not None:
            self.challenges.append(f'Basic realm="{REALM}", charset="UTF-8"')

    @property
    def enabled(self) -> bool:
        return bool(self.challenges)

    def accepts(self, authorization: str | None, *, intake: bool = True) -> bool:
        """Whether `authorization` may write alerts (`intake`) or read (not `intake`)."""
        return self.principal(authorization, intake=intake) is not None

    def principal(self, authorization: str | None, *, intake: bool = True) -> str | None:
        """Who `authorization` authenticates (the basic user name, "bearer token" or "read
        token"), None when it may not write alerts (`intake`) or read (not `intake`)."""
        if not authorization:
            return None
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if not intake and self._read is not None:
            ok = scheme == "bearer" and _equal(credentials, self._read)
            return "read token" if ok else None
        if scheme == "bearer" and self._bearer is not None:
            return "bearer token" if _equal(credentials, self._bearer) else None
        if scheme == "basic" and self._basic_user is not None and self._basic_password is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return None
            user, separator, password = decoded.partition(b":")
            user_ok = _equal(user, self._basic_user)
            password_ok = _equal(password, self._basic_password)
            return self._basic_user if separator and user_ok and password_ok else None
        return None


def auth_middleware(authenticator: Authenticator) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if authenticator.enabled and request.path.startswith(PROTECTED_PREFIXES):
            header = request.headers.get("Authorization")
            intake = request.path.rstrip("/") == INTAKE_PATH and request.method in ("POST", "PUT")
            principal = authenticator.principal(header, intake=intake)
            if principal is not None:
                request[PRINCIPAL] = principal
            else:
                schemes = " or ".join(c.split()[0] for c in authenticator.challenges)
                reason = (
                    "missing credentials" if header is None else "the credentials are not valid"
                )
                response = problem_response(401, f"{reason}; send {schemes} authorization")
                for challenge in authenticator.challenges:
                    response.headers.add("WWW-Authenticate", challenge)
                return response
        answer: web.StreamResponse = await handler(request)
        return answer

    return middleware
