"""Secrets kept out of what correlator writes: its log lines, `correlator config`, errors.

What counts as a secret, wherever it appears in a text:
- the userinfo of any URL (`scheme://user:password@host`, a password may hold `@`);
- the values of secret query parameters (`sig=`, `token=`, `key=`, …: Teams/Logic Apps
  webhooks carry their signature there);
- the path and query of chat webhook URLs by their shape (Slack's `/services/…`, Mattermost's
  `/hooks/…`), and of every secret URL configured (a sink's webhook URL);
- every secret value configured (tokens, passwords, header values), and bearer tokens and
  known token shapes (`xoxb-…`, `ghp_…`, `glpat-…`) whoever logs them.

`Redactor` holds what the configuration made secret; `RedactingFilter` applies it to every
log record, message, arguments, extra fields and exception text alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

MASK = "***"
SECRET_QUERY_KEYS = frozenset(
    {"sig", "signature", "token", "access_token", "api_key", "apikey", "key", "secret",
     "password", "passwd", "auth", "code", "client_secret", "x-amz-signature"}
)  # fmt: skip
# The netloc runs up to the first / ? # or blank: its userinfo is everything before its last @.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"<>]*@")
_QUERY = re.compile(r"(?P<key>[?&;](?P<name>[A-Za-z0-9_.-]+)=)(?P<value>[^&#\s'\"<>]+)")
_CHAT_WEBHOOK = re.compile(
    r"(?P<base>https?://[^/\s'\"<>]+)(?P<path>/(?:services|hooks|workflows|webhookb2)/[^\s'\"<>]+)"
)
_TOKENS = re.compile(
    r"\b(?:xox[abposr]-[A-Za-z0-9-]{6,}|gh[pousr]_[A-Za-z0-9]{10,}|github_pat_[A-Za-z0-9_]{10,}"
    r"|glpat-[A-Za-z0-9_-]{10,})"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{6,}"
)
# Shorter configured values would mask ordinary words.
MIN_SECRET_LENGTH = 6


def mask_userinfo(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced by ***."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def mask_query(text: str) -> str:
    """`text` with the values of secret query parameters replaced by ***."""

    def replace(match: re.Match[str]) -> str:
        if match["name"].lower() in SECRET_QUERY_KEYS:
            return f"{match['key']}{MASK}"
        return match[0]

    return _QUERY.sub(replace, text)


def mask_text(text: str) -> str:
    """What can be masked without knowing the configuration."""
    text = mask_userinfo(text)
    text = _CHAT_WEBHOOK.sub(lambda m: f"{m['base']}/{MASK}", text)
    text = mask_query(text)
    return _TOKENS.sub(MASK, text)


class Redactor:
    """Masks the configured secrets, and what `mask_text` masks, in any text."""

    def __init__(self, *, values: Iterable[str] = (), urls: Iterable[str] = ()) -> None:
        literals = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
        for url in urls:
            try:
                parts = urlsplit(url)
            except ValueError:
                literals.add(url)
                continue
            secret = parts.path + (f"?{parts.query}" if parts.query else "")
            for piece in (secret, parts.path, parts.query):
                if len(piece) >= MIN_SECRET_LENGTH:
                    literals.add(piece)
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(literals, key=len, reverse=True)
        self._literals = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._literals is not None:
            text = self._literals.sub(lambda m: "/" + MASK if m[0][0] == "/" else MASK, text)
        return mask_text(text)


def redactor_for(settings: BaseModel) -> Redactor:
    """A Redactor for every secret in `settings`: each SecretStr, each header value, the
    password of each URL, and the whole of each sink's URL (a webhook URL is the credential)."""
    values: list[str] = []
    urls: list[str] = []

    def walk(value: Any, *, field: str, in_sink: bool) -> None:
        if isinstance(value, BaseModel):
            sink = in_sink or "type" in type(value).model_fields
            for name in type(value).model_fields:
                walk(getattr(value, name), field=name, in_sink=sink)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, field=field, in_sink=in_sink)
        elif isinstance(value, dict):
            for item in value.values():
                if field == "headers" and isinstance(item, str):
                    values.append(item)
                else:
                    walk(item, field=field, in_sink=in_sink)
        elif isinstance(value, SecretStr):
            secret = value.get_secret_value()
            values.append(secret)
            if "://" in secret:
                urls.append(secret)
        elif isinstance(value, str) and "://" in value:
            _, _, rest = value.partition("://")
            userinfo, at, _ = rest.split("/", 1)[0].rpartition("@")
            if at:
                values.extend(p for p in (userinfo, userinfo.partition(":")[2]) if p)
            if in_sink and field == "url":
                urls.append(value)

    walk(settings, field="", in_sink=False)
    return Redactor(values=values, urls=urls)


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler formats it: the message with its
    arguments, every extra field, and the exception's text."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = self.redact(message), None
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, self.redact(value))
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = self.redact(text), None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
