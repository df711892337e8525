"""Untrusted text (alert labels and annotations, log lines, service names) made inert.

Nothing that came from an alert or a log may mention people (`@channel`, `<!here>`,
`<@U123>`), link anywhere, or format text in a chat message or Git comment. Each function
keeps the text readable and only defuses: entities for the characters a platform parses,
a word joiner (U+2060, invisible) after `@` and inside `://` so that neither a mention nor a
link can form.
"""

from __future__ import annotations

import re
from urllib.parse import quote

JOINER = "\u2060"
_URL_SAFE = ":/?#&=+;,@!$*~%"  # with letters, digits and `-._`, left as they are
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def defang(text: str) -> str:
    """No mention, no autolink, no control characters (the common core)."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
    return text.replace("@", "@" + JOINER).replace("://", ":" + JOINER + "//")


def slack(text: str) -> str:
    """For Slack mrkdwn and Mattermost: `&`, `<`, `>` are the only characters Slack parses into
    links and mentions; formatting characters get a joiner so they pair with nothing."""
    text = defang(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in ("*", "_", "~", "`"):
        text = text.replace(mark, mark + JOINER)
    return text


def markdown(text: str) -> str:
    """For GitHub/GitLab Markdown: HTML escaped, every Markdown metacharacter backslashed."""
    text = defang(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", text)


def markdown_link(title: str, url: str) -> str:
    """A Markdown link that stays one link: the title escaped, and the URL an http(s) one in
    angle brackets, with every character that could end or bend it percent-encoded (`)`, `>`,
    `]`, quotes, spaces…); another scheme gives the title alone."""
    if not url.startswith(("https://", "http://")):
        return markdown(title)
    return f"[{markdown(title)}](<{quote(url, safe=_URL_SAFE)}>)"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
