"""What a chat platform or Git host would act on in rendered text, outside code spans.

Shared by the renderers' property test and the end-to-end hostile-content tests: strip what
the platform shows literally (code spans, our own links and marker), then list the tokens
that would mention, link or format.
"""

from __future__ import annotations

import re
from collections import Counter

from correlator.sinks.escape import JOINER

# CommonMark: a run of n backticks opens a span closed by the next run of exactly n.
_MARKDOWN_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_SLACK_CODE = re.compile(r"`[^`\n]+`")
# Our own links: Slack's <url|Title>, Markdown's [Title](<url>), the comment's marker.
_SLACK_LINK = re.compile(r"<https?://[^|<>\s]+\|[A-Za-z0-9 ().-]+>")
_MARKDOWN_LINK = re.compile(r"\[[A-Za-z0-9 ().-]+\]\(<https?://[^<>\s]+>\)")
_MARKER = re.compile(r"<!-- correlator:incident:\d+ -->")
_MARKDOWN_ACTIVE = ("@", "://", "www.", "*", "_", "~", "`", "[", "]", "<", ">", "&", "#", "|", "$")
_SLACK_ACTIVE = ("@", "://", "www.", "*", "_", "~", "`", "<", ">")


def outside_markdown_code(text: str) -> str:
    return _MARKDOWN_CODE.sub(" ", _MARKER.sub(" ", _MARKDOWN_LINK.sub(" ", text)))


def outside_slack_code(text: str) -> str:
    text = _SLACK_CODE.sub(" ", _SLACK_LINK.sub(" ", text))
    return re.sub(f".{JOINER}", " ", text)  # a mark with a joiner after it pairs with nothing


def live_markdown(text: str) -> Counter[str]:
    """Tokens GitHub, GitLab or Mattermost would act on, outside code spans and our links."""
    rest = outside_markdown_code(text)
    tokens = (*_MARKDOWN_ACTIVE, "\\")
    return Counter({token: rest.count(token) for token in tokens})


def live_slack(text: str) -> Counter[str]:
    """Tokens Slack would act on, outside code spans and our links."""
    rest = outside_slack_code(text)
    return Counter({token: rest.count(token) for token in _SLACK_ACTIVE})
