"""The command line as an operator uses it: config, version, and serve's refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from correlator import __version__
from correlator.settings import reference_markdown
from tests.support.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "CORRELATOR_AUTH_BEARER_TOKEN": "bearer-SECRET-1",
    "CORRELATOR_AUTH_BASIC_USERNAME": "am",
    "CORRELATOR_AUTH_BASIC_PASSWORD": "basic-SECRET-2",
    "CORRELATOR_DATABASE_URL": "postgresql://app:db-SECRET-3@db.example:5432/correlator",
    "CORRELATOR_LOKI_URL": "https://tenant:loki-SECRET-4@loki.example",
    "CORRELATOR_LOKI_BEARER_TOKEN": "loki-SECRET-5",
    "CORRELATOR_JAEGER_BASIC_USERNAME": "jaeger",
    "CORRELATOR_JAEGER_BASIC_PASSWORD": "jaeger-SECRET-6",
}


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    return subprocess.run(
        [sys.executable, "-m", "correlator", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_prints_the_package_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"correlator {__version__}"


def test_config_shows_effective_values_with_every_secret_masked(tmp_path: Path) -> None:
    config = tmp_path / "correlator.yml"
    config.write_text("server:\n  port: 9999\nqueue:\n  workers: 3\n")
    result = run("config", "--config", str(config), "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["server"]["port"] == 9999  # from the file
    assert data["queue"]["workers"] == 3
    assert data["auth"]["basic_username"] == "am"  # from the environment
    assert data["database"]["url"] == "postgresql://app:***@db.example:5432/correlator"
    assert data["loki"]["url"] == "https://tenant:***@loki.example"
    for secret in (
        "bearer-SECRET-1",
        "basic-SECRET-2",
        "db-SECRET-3",
        "loki-SECRET-4",
        "loki-SECRET-5",
        "jaeger-SECRET-6",
    ):
        assert secret not in result.stdout + result.stderr


def test_config_masks_the_userinfo_of_every_url(tmp_path: Path) -> None:
    config = tmp_path / "correlator.yml"
    config.write_text(
        "notify:\n  sinks:\n"
        "    - {type: webhook, name: hook, url: 'https://hook:hook-SECRET-7@hooks.example/in'}\n"
        "    - {type: grafana, name: notes, url: 'http://admin:grafana-SECRET-8@grafana:3000',"
        " token: t}\n"
        "    - {type: github, name: gh, token: t,"
        " api_url: 'https://ghp-SECRET-9@api.github.example'}\n"
        "provisioning:\n  grafana_url: 'http://admin:grafana-SECRET-10@grafana:3000'\n"
    )
    result = run("config", "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["notify"]["sinks"][0]["url"] == "https://hook:***@hooks.example/in"
    assert data["provisioning"]["grafana_url"] == "http://admin:***@grafana:3000"
    for n in range(7, 11):
        assert f"SECRET-{n}" not in result.stdout + result.stderr


def test_config_masks_headers_secret_query_strings_and_passwords_with_at(
    tmp_path: Path,
) -> None:
    config = tmp_path / "correlator.yml"
    config.write_text(
        "notify:\n  sinks:\n"
        "    - {type: webhook, name: flow, headers: {X-Api-Key: header-SECRET-11},"
        " url: 'https://x.logic.azure.com/workflows/1?api-version=2016&sig=sig-SECRET-12'}\n"
        "prometheus:\n  headers: {Authorization: 'Basic header-SECRET-13'}\n"
        "database:\n  url: 'postgresql://app:db@SECRET-14@db.example:5432/correlator'\n"
        "loki:\n  url: 'https://tenant:lo@ki-SECRET-15@loki.example/?token=tok-SECRET-16'\n"
    )
    result = run("config", "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (sink,) = data["notify"]["sinks"]
    assert sink["headers"] == {"X-Api-Key": "***"}
    assert sink["url"] == "https://x.logic.azure.com/workflows/1?api-version=2016&sig=***"
    assert data["prometheus"]["headers"] == {"Authorization": "***"}
    assert data["database"]["url"] == "postgresql://app:***@db.example:5432/correlator"
    assert data["loki"]["url"] == "https://tenant:***@loki.example/?token=***"
    for n in range(11, 17):
        assert f"SECRET-{n}" not in result.stdout + result.stderr


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "correlator.yml"
    config.write_text("server:\n  port: 9999\n")
    result = run("config", "--config", str(config), env={"CORRELATOR_SERVER_PORT": "7000"})
    assert "port: 7000" in result.stdout


def test_bad_configuration_is_named_precisely(tmp_path: Path) -> None:
    cases = {
        "server:\n  port: high\n": "server.port",
        "server:\n  prot: 80\n": "server.prot",
        "- a list\n": "mapping",
        "server: [\n": "not valid YAML",
        "database:\n  url: mysql://x/y\n": "not supported",
        "auth:\n  basic_username: only-me\n": "must be set together",
        "correlation:\n  signals:\n  - {name: x, query: up}\n": "must select $names or $pods",
        "correlation:\n  signals:\n  - {name: 'a b', query: $names}\n": "correlation.signals.0",
        "correlation:\n  deadline_s: 0\n": "correlation.deadline_s",
        "loki:\n  max_body_bytes: 10\n": "loki.max_body_bytes",
        "notify:\n  sinks:\n  - {type: slack, name: team-a, token: xoxb-1}\n": (
            "sink team-a: a bot token needs a channel"
        ),
        "notify:\n  sinks:\n  - {type: pager, name: p}\n": "notify.sinks.0",
        "notify:\n  sinks:\n  - {type: webhook, name: h, url: ftp://x}\n": (
            "notify.sinks.0.webhook.url"
        ),
    }
    for text, needle in cases.items():
        config = tmp_path / "bad.yml"
        config.write_text(text)
        result = run("config", "--config", str(config))
        assert result.returncode == 2, text
        assert needle in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.stderr
    missing = run("config", "--config", str(tmp_path / "nope.yml"))
    assert missing.returncode == 2 and "cannot read config file" in missing.stderr
    env_error = run("config", env={"CORRELATOR_QUEUE_WORKERS": "-1"})
    assert env_error.returncode == 2 and "CORRELATOR_QUEUE_WORKERS" in env_error.stderr
    bad_url = run("serve", env={"CORRELATOR_DATABASE_URL": "nonsense://x"})
    assert bad_url.returncode == 2, bad_url.stderr
    assert "database.url (CORRELATOR_DATABASE_URL)" in bad_url.stderr, bad_url.stderr
    assert "settings (CORRELATOR_)" not in bad_url.stderr


def test_serve_refuses_an_open_non_loopback_bind(tmp_path: Path) -> None:
    result = run("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 2
    assert "no credential configured" in result.stderr
    assert "--insecure" in result.stderr
    assert not (tmp_path / "correlator.db").exists()


def test_serve_with_insecure_binds_anyway(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "correlator",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--insecure",
        ],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200,
            timeout_s=30,
            what="serve --insecure",
        )
        assert (tmp_path / "correlator.db").exists()  # embedded default: SQLite in the cwd
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    assert process.returncode == 0, output
    assert '"message": "shutting down"' in output


def test_serve_explains_a_store_it_cannot_open(tmp_path: Path) -> None:
    result = run(
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env={"CORRELATOR_DATABASE_URL": "postgresql://nobody:pw-SECRET@127.0.0.1:1/x"},
    )
    assert result.returncode == 69
    assert "cannot start" in result.stderr and "127.0.0.1:1" in result.stderr
    assert "pw-SECRET" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_documented_configuration_reference_matches_the_settings() -> None:
    page = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    begin, end = "<!-- config-reference:begin -->\n", "<!-- config-reference:end -->"
    documented = page.split(begin, 1)[1].split(end, 1)[0]
    assert documented == reference_markdown(), "run: correlator config --reference"
    assert run("config", "--reference").stdout == reference_markdown()
