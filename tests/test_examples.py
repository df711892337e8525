"""What the README and the documentation site hand a new user exists in the checkout and works:
no `../shared` paths in their commands, the sample payloads are what the intake accepts, the
bundle loads, and the README's links into `docs/` lead to pages."""

from __future__ import annotations

import re
from pathlib import Path

from correlator.models.alerts import WebhookPayload
from correlator.rca.bundle import load

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The benchmarks page runs the development machines' datasets (`../shared/datasets/…`), which a
# checkout does not hold: it is the one page whose commands need more than the checkout.
NEEDS_MORE_THAN_THE_CHECKOUT = {"benchmarks.md"}
PAGES = sorted(
    page
    for page in (ROOT / "docs").rglob("*.md")
    if page.relative_to(ROOT / "docs").as_posix() not in NEEDS_MORE_THAN_THE_CHECKOUT
)


def _user_commands() -> list[str]:
    """The shell blocks of the README and of the site's pages, as lines."""
    texts = [README, *(page.read_text() for page in PAGES)]
    blocks = [block for text in texts for block in re.findall(r"```sh\n(.*?)```", text, re.S)]
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_the_readme_and_docs_commands_use_only_what_the_checkout_ships() -> None:
    commands = _user_commands()
    assert commands
    assert not [line for line in commands if "../shared" in line]
    for path in re.findall(r"\bexamples/[\w./-]*\w", "\n".join(commands)):
        assert (ROOT / path).exists(), path
    correlator = [line for line in commands if re.search(r"(^|\s)correlator ", line)]
    assert not correlator, "say where it lives: .venv/bin/correlator"
    assert any("promtool test rules" in line for line in commands)
    assert any("--port" in line for line in commands)


def test_the_readme_links_lead_to_pages_of_the_site() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]+)", README)
    assert "docs/getting-started.md" in links
    assert not [link for link in links if not (ROOT / link).is_file()]


def test_the_sample_payloads_are_alertmanager_webhooks() -> None:
    for name in ("firing.json", "resolved.json"):
        text = (ROOT / "examples" / "alertmanager" / name).read_text()
        assert WebhookPayload.model_validate_json(text).alerts


def test_the_sample_bundle_loads() -> None:
    bundle = load(ROOT / "examples" / "bundle")
    assert bundle.telemetry is not None and bundle.windows is not None
