"""What the README hands a new user exists in the checkout and works: no `../shared` paths in
its commands, the sample payloads are what the intake accepts, the bundle loads."""

from __future__ import annotations

import re
from pathlib import Path

from correlator.models.alerts import WebhookPayload
from correlator.rca.bundle import load

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _user_commands() -> list[str]:
    """The shell blocks of the README's user-facing part (before the reference tables)."""
    blocks = re.findall(r"```sh\n(.*?)```", README.split("## Configuration reference", 1)[0], re.S)
    return [line for block in blocks for line in block.splitlines()]


def test_the_readme_commands_use_only_what_the_checkout_ships() -> None:
    commands = _user_commands()
    assert commands
    assert not [line for line in commands if "../shared" in line]
    for path in re.findall(r"\bexamples/[\w./-]*\w", "\n".join(commands)):
        assert (ROOT / path).exists(), path
    correlator = [line for line in commands if re.search(r"(^|\s)correlator ", line)]
    assert not correlator, "say where it lives: .venv/bin/correlator"
    assert any("promtool test rules" in line for line in commands)
    assert any("--port" in line for line in commands)


def test_the_sample_payloads_are_alertmanager_webhooks() -> None:
    for name in ("firing.json", "resolved.json"):
        text = (ROOT / "examples" / "alertmanager" / name).read_text()
        assert WebhookPayload.model_validate_json(text).alerts


def test_the_sample_bundle_loads() -> None:
    bundle = load(ROOT / "examples" / "bundle")
    assert bundle.telemetry is not None and bundle.windows is not None
