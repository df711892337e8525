"""`correlator provision`: files and Grafana targets, plan output, exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from correlator.provisioning import files
from correlator.provisioning.naming import Links, dashboard_uid
from correlator.provisioning.reconcile import Action
from tests.fakes.grafana import VERSIONS, FakeGrafana
from tests.provisioning.conftest import ROOT, promtool, webapp
from tests.support.processes import run_cli
from tests.support.servers import served

LINKS = Links()


def test_files_target_writes_once_then_only_what_changed(tmp_path: Path) -> None:
    apps = [webapp("checkout", slo={"availability": 99.9}), webapp("catalog")]
    steps, contents = files.plan(tmp_path, apps, LINKS)
    assert files.apply(steps, contents) == 1 + 4 * 2  # provider + 4 files per app
    again, contents = files.plan(tmp_path, apps, LINKS)
    assert {s.action for s in again} == {Action.UNCHANGED}
    changed = [webapp("checkout", slo={"availability": 99.5}), webapp("catalog")]
    steps, contents = files.plan(tmp_path, changed, LINKS)
    updated = [s for s in steps if s.action is Action.UPDATE]
    assert {s.app for s in updated} == {"shop/checkout"} and len(updated) == 4
    assert files.apply(steps, contents) == 4


def test_files_of_a_removed_app_are_deleted_and_foreign_files_kept(tmp_path: Path) -> None:
    apps = [webapp("checkout"), webapp("catalog")]
    files.apply(*files.plan(tmp_path, apps, LINKS))
    foreign_rules = tmp_path / "prometheus" / "rules" / "hand-written.rules.yaml"
    foreign_rules.write_text("groups: []\n")
    foreign_board = tmp_path / "grafana" / "dashboards" / "Team payments" / "mine.json"
    foreign_board.write_text('{"title": "mine", "tags": ["correlator"]}')
    steps, contents = files.plan(tmp_path, apps[:1], LINKS)
    deleted = sorted(s.path.name for s in steps if s.action is Action.DELETE)
    assert deleted == sorted(
        [
            "shop.catalog.rules.yaml",
            "shop.catalog.test.yaml",
            "shop.catalog.prometheusrule.yaml",
            f"{dashboard_uid('shop', 'catalog')}.json",
        ]
    )
    files.apply(steps, contents)
    assert foreign_rules.exists() and foreign_board.exists()
    assert not (tmp_path / "prometheus" / "rules" / "shop.catalog.rules.yaml").exists()


def test_generated_rule_tests_pass_where_they_are_written(tmp_path: Path) -> None:
    files.apply(*files.plan(tmp_path, [webapp("checkout", slo={"availability": 99.9})], LINKS))
    result = promtool(
        "test", "rules", "shop.checkout.test.yaml", cwd=tmp_path / "prometheus" / "tests"
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_provision_files_from_a_directory_prints_the_plan(tmp_path: Path) -> None:
    code, out, err = await run_cli(
        "provision",
        "--source",
        str(ROOT / "examples"),
        "--target",
        "files",
        "--out",
        str(tmp_path),
        "--dry-run",
    )
    assert code == 0, err
    assert out.count("create") == 13 and "shop/checkout" in out
    assert "would write 13 file(s)" in err and not any(tmp_path.iterdir())
    code, out, err = await run_cli(
        "provision", "--source", str(ROOT / "examples"), "--target", "files", "--out", str(tmp_path)
    )
    assert code == 0 and "write 13 file(s), 0 unchanged" in err
    code, out, err = await run_cli(
        "provision", "--source", str(ROOT / "examples"), "--target", "files", "--out", str(tmp_path)
    )
    assert code == 0 and out == "" and "write 0 file(s), 13 unchanged" in err


@pytest.mark.parametrize("version", VERSIONS)
async def test_provision_grafana_reports_invalid_manifests_and_provisions_the_rest(
    tmp_path: Path, version: str
) -> None:
    source = tmp_path / "manifests"
    shutil.copytree(ROOT / "examples", source)
    (source / "broken.yaml").write_text(
        "apiVersion: platform.correlator.dev/v1alpha1\nkind: WebApplication\n"
        "metadata: {name: Bad_Name}\nspec: {image: x, team: t}\n"
    )
    fake = FakeGrafana(version=version)
    async with served(fake.app) as url:
        env = {
            "CORRELATOR_PROVISIONING_GRAFANA_URL": url,
            "CORRELATOR_PROVISIONING_GRAFANA_TOKEN": fake.token,
        }
        code, out, err = await run_cli(
            "provision", "--source", str(source), "--target", "grafana", env=env
        )
        assert code == 1
        assert "invalid: " in err and "broken.yaml: metadata.name" in err
        assert out.count("create") == 3 and len(fake.dashboards) == 3
        assert fake.token not in out + err
        writes = fake.writes
        code, out, err = await run_cli(
            "provision", "--source", str(ROOT / "examples"), "--target", "grafana", env=env
        )
        assert code == 0 and fake.writes == writes
        assert "write 0 artifact(s), 3 unchanged, 0 error(s)" in err


async def test_provision_explains_what_it_cannot_do(tmp_path: Path) -> None:
    code, _, err = await run_cli(
        "provision",
        "--source",
        "k8s",
        "--target",
        "files",
        "--out",
        str(tmp_path),
        env={"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")},
    )
    assert code == 2 and "no usable Kubernetes credentials" in err and "Traceback" not in err
    code, _, err = await run_cli(
        "provision", "--source", str(ROOT / "examples"), "--target", "grafana"
    )
    assert code == 2 and "CORRELATOR_PROVISIONING_GRAFANA_TOKEN" in err
    code, _, err = await run_cli(
        "provision", "--source", str(ROOT / "examples"), "--target", "files"
    )
    assert code == 2 and "--out" in err


def test_grafana_managed_rules_are_written_as_alerting_files_and_deleted_properly(
    tmp_path: Path,
) -> None:
    teams = frozenset({"payments"})
    apps = [
        webapp("checkout", slo={"availability": 99.9}),
        webapp("catalog", team="storefront", slo={"availability": 99.5}),
    ]
    files.apply(*files.plan(tmp_path, apps, LINKS, grafana_managed_teams=teams))
    alerting = tmp_path / "grafana" / "provisioning" / "alerting"
    assert sorted(p.name for p in alerting.iterdir()) == ["shop.checkout.yaml"]
    written = yaml.safe_load((alerting / "shop.checkout.yaml").read_text())
    group = written["groups"][0]
    assert written["apiVersion"] == 1 and group["folder"] == "Team payments"
    uids = sorted(rule["uid"] for rule in group["rules"])
    assert len(uids) == 2 and group["rules"][0]["for"] in ("2m", "15m")

    files.apply(*files.plan(tmp_path, apps[1:], LINKS, grafana_managed_teams=teams))
    assert not (alerting / "shop.checkout.yaml").exists()
    tombstone = yaml.safe_load((alerting / "correlator-deleted.yaml").read_text())
    assert sorted(entry["uid"] for entry in tombstone["deleteRules"]) == uids

    files.apply(*files.plan(tmp_path, apps, LINKS, grafana_managed_teams=teams))
    assert sorted(p.name for p in alerting.iterdir()) == ["shop.checkout.yaml"]
