"""What the settings groups share: the environment prefix, the group base class, the base of
every sink's settings (each sink module in correlator/sinks defines its own on it), and the URL
helpers that mask secrets and tell the store apart."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from correlator.redaction import mask_query

ENV_PREFIX = "CORRELATOR_"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SinkSettingsBase(_Group):
    """What every sink has: a unique name, and which incidents it hears of. A sink's settings
    add `type: Literal["its-kind"]` and its own fields (correlator/sinks/registry.py)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    severities: list[str] = Field(default_factory=list, description="Only these (empty: all).")
    teams: list[str] = Field(
        default_factory=list, description="Only apps of these teams (empty: all)."
    )


def database_scheme(url: str) -> Literal["sqlite", "postgresql"]:
    """Which store a URL selects; raises ValueError naming what is accepted."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"database.url is not a URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(
        f"database.url scheme {parsed.drivername!r} is not supported; "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def mask_url(url: str) -> str:
    """The URL with its secrets replaced by ***, for logs and `correlator config`: the password
    (which may hold `@`), or for an HTTP URL with a user only, that user (a token in that
    place); and the values of secret query parameters (`sig=`, `token=`, …)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return mask_query(url)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")  # the host follows the last @
    if at:
        user, colon, _ = userinfo.partition(":")
        masked = f"{user}:***" if colon else "***" if scheme.lower() in ("http", "https") else user
        rest = f"{masked}@{host}{rest[end:]}"
    return mask_query(f"{scheme}://{rest}")


def mask_urls(value: Any, key: str = "") -> Any:
    """Every URL-shaped string in `value` (nested dicts and lists) with its secrets masked, and
    every header value (an API key, a token) replaced by ***."""
    if isinstance(value, dict):
        if key == "headers":
            return {name: "***" for name in value}
        return {name: mask_urls(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [mask_urls(item, key) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def is_loopback(host: str) -> bool:
    """True when binding `host` exposes the server to this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
