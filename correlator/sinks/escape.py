"""Untrusted text (alert labels and annotations, log lines, service names) made inert, and
left byte-identical where a reader copies it.

Nothing that came from an alert or a log may mention people (`@here`, `<!channel>`,
`<@U123>`, `@user`), link anywhere, or format text in a chat message or Git comment. And a
name a responder copies out of chat into Grafana, PromQL or kubectl (`error_ratio`,
`http_requests_total{code="500"}`, `checkout-v2`) must be the name, byte for byte.

So text is not altered, it is placed: a word made only of letters, digits and punctuation
that no platform acts on stays as it is; any other word goes into a code span, where
Slack, Mattermost, GitHub and GitLab neither format, link nor mention. A name goes into one
code span whole. Teams' TextRun parses no Markdown at all (the renderer uses it), so there
only a URL-looking word is defused.

Two alterations are left, where a platform gives no other way: Slack cannot put a backtick
inside a code span, so there a backtick shows as U+02CB (modifier letter grave); and in Teams
a URL-looking word gets an invisible word joiner (U+2060) after its `:` (or in `www.`). No
metric, label or Kubernetes name has either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

JOINER = "\u2060"
BACKTICK = "\u02cb"
_URL_SAFE = ":/?#&=+;,@!$*~%"  # with letters, digits and `-._`, left as they are
# Punctuation no platform acts on inside a word (`:` only at its end: `:emoji:`, `a://b`).
_PLAIN = re.compile(r"[^\W_]|[.,;%()'\"=/?!+\-…·\u2013\u2014]")
# What a word may not start with: list markers and setext underlines at a line's start, and
# GitLab's references (`!12` merge request, `%milestone`).
_LEADING = re.compile(r"^(?:[-+=!%]|\d+[.)]$)")
# Autolinks: bare domains (`evil.example`, `www.x`), and hex that GitHub links to a commit.
_LINKISH = re.compile(r"[^\W\d_]\.[^\W\d_]|^[0-9a-f]{7,40}$")


def defang(text: str) -> str:
    """Control characters (and invisible format characters such as bidi overrides) become
    spaces; nothing else changes."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)


def is_plain(word: str) -> bool:
    """A word every platform shows as typed, inert: no mention, link or formatting."""
    body = word[:-1] if word.endswith(":") else word
    return (
        bool(body)
        and all(_PLAIN.fullmatch(ch) for ch in body)
        and not _LEADING.match(body)
        and not _LINKISH.search(body)
    )


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(text: str) -> str:
    """A Slack code span (`&`, `<`, `>` as entities, which Slack shows as the characters).
    Slack has no way to put a backtick inside a code span: one shows as U+02CB, which pairs
    with nothing (no metric, label or Kubernetes name has a backtick)."""
    return f"`{_entities(text.replace('`', BACKTICK).replace(chr(10), ' '))}`"


def markdown_code(text: str) -> str:
    """A CommonMark code span holding `text` exactly: fenced by one backtick more than its
    longest run of backticks, padded with a space where it starts or ends with one (the
    renderer strips one space from each side)."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    spaced = text.startswith(" ") and text.endswith(" ") and bool(text.strip())
    pad = " " if text.startswith("`") or text.endswith("`") or spaced else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _words(text: str, code: Callable[[str], str]) -> str:
    parts = re.split(r"(\s+)", defang(text))
    return "".join(
        part if not part or part.isspace() or is_plain(part) else code(part) for part in parts
    )


def slack(text: str) -> str:
    """Free text for Slack mrkdwn: plain words as typed, every other word a code span."""
    return _words(text, slack_code)


def markdown(text: str) -> str:
    """Free text for GitHub, GitLab and Mattermost Markdown: plain words as typed, every other
    word a code span."""
    return _words(text, markdown_code)


def slack_name(text: str) -> str:
    """A name (service, alert, namespace, revision) for Slack: one code span if it is not
    plain, so it copies out whole."""
    text = defang(text)
    return text if _all_plain(text) or not text.strip() else slack_code(text)


def markdown_name(text: str) -> str:
    """A name for Markdown: one code span if it is not plain."""
    text = defang(text)
    return text if _all_plain(text) or not text.strip() else markdown_code(text)


def _all_plain(text: str) -> bool:
    return all(is_plain(word) for word in text.split()) and bool(text.strip())


def text_run(text: str) -> str:
    """Text for a Teams TextRun, which parses no Markdown: only a URL-looking word is defused
    (a joiner after its `:` or in `www.`), so no client turns it into a link."""
    return "".join(
        part.replace("://", ":" + JOINER + "//").replace("www.", "www" + JOINER + ".")
        if "://" in part or "www." in part
        else part
        for part in re.split(r"(\s+)", defang(text))
    )


def markdown_link(title: str, url: str) -> str:
    """A Markdown link that stays one link: the title escaped, and the URL an http(s) one in
    angle brackets, with every character that could end or bend it percent-encoded (`)`, `>`,
    `]`, quotes, spaces…); another scheme gives the title alone."""
    if not url.startswith(("https://", "http://")):
        return markdown(title)
    return f"[{markdown(title)}](<{quote(url, safe=_URL_SAFE)}>)"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
