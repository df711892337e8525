"""Reconciling the Grafana test server with WebApplications, through grafana-client."""

from __future__ import annotations

import copy
from typing import Any

from correlator.metrics import Metrics
from correlator.models.webapp import WebApplication
from correlator.provisioning.dashboards import team_folder
from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.naming import Links, dashboard_uid
from correlator.provisioning.reconcile import Action, reconcile
from correlator.provisioning.service import Provisioner
from correlator.settings import load_settings
from tests.provisioning.conftest import webapp
from tests.support.processes import free_port

LINKS = Links(grafana_url="https://grafana.example")


def apps() -> list[WebApplication]:
    return [
        webapp("checkout", "shop", team="payments", slo={"availability": 99.9}),
        webapp("catalog", "shop", team="storefront"),
        webapp("ledger", "finance", team="payments", observability={"revertManualEdits": False}),
    ]


async def test_first_reconcile_creates_folders_and_dashboards(grafana: Any) -> None:
    fake, target = grafana
    report = await reconcile(target, apps(), LINKS)
    assert report.errors == []
    assert report.count(Action.CREATE) == 3
    assert set(fake.folders) == {team_folder("payments").uid, team_folder("storefront").uid}
    stored = fake.dashboards[dashboard_uid("shop", "checkout")]
    assert stored.folder_uid == team_folder("payments").uid
    assert stored.messages == ["correlator: created for WebApplication shop/checkout"]
    assert "managed-by:correlator" in stored.dashboard["tags"]


async def test_unchanged_resync_writes_nothing(grafana: Any) -> None:
    fake, target = grafana
    await reconcile(target, apps(), LINKS)
    writes = fake.writes
    report = await reconcile(target, apps(), LINKS)
    assert fake.writes == writes
    assert report.writes == 0 and report.count(Action.UNCHANGED) == 3


async def test_spec_change_updates_exactly_that_dashboard(grafana: Any) -> None:
    fake, target = grafana
    await reconcile(target, apps(), LINKS)
    writes = fake.writes
    changed = apps()
    changed[1] = webapp("catalog", "shop", team="storefront", slo={"availability": 99.5})
    report = await reconcile(target, changed, LINKS)
    assert [(s.action, s.app) for s in report.steps if s.action is not Action.UNCHANGED] == [
        (Action.UPDATE, "shop/catalog")
    ]
    assert fake.writes == writes + 1
    assert fake.dashboards[dashboard_uid("shop", "catalog")].messages[-1] == (
        "correlator: WebApplication shop/catalog changed"
    )


async def test_manual_edit_is_put_back_with_a_message(grafana: Any) -> None:
    fake, target = grafana
    await reconcile(target, apps(), LINKS)
    uid = dashboard_uid("shop", "checkout")
    fake.edit_by_hand(uid)
    report = await reconcile(target, apps(), LINKS)
    assert [s.action for s in report.steps if s.app == "shop/checkout"] == [Action.REVERT]
    stored = fake.dashboards[uid]
    assert stored.dashboard["title"] == "shop / checkout"
    assert stored.messages[-1].startswith("correlator: reverted a manual edit")


async def test_hand_edit_is_recognised_without_any_state_of_our_own(grafana: Any) -> None:
    # Another process (a one-shot command, a new replica) finds the edit from Grafana alone,
    # whether the UI kept or dropped correlator's mark.
    fake, target = grafana
    await reconcile(target, apps(), LINKS)
    for uid in (dashboard_uid("shop", "checkout"), dashboard_uid("shop", "catalog")):
        fake.edit_by_hand(uid)
    fake.dashboards[dashboard_uid("shop", "catalog")].dashboard.pop("correlator")
    report = await reconcile(target, apps(), LINKS)
    assert {s.app: s.action for s in report.steps if s.action is not Action.UNCHANGED} == {
        "shop/checkout": Action.REVERT,
        "shop/catalog": Action.REVERT,
    }


async def test_app_that_opts_out_keeps_its_manual_edit(grafana: Any) -> None:
    fake, target = grafana
    await reconcile(target, apps(), LINKS)
    uid = dashboard_uid("finance", "ledger")
    fake.edit_by_hand(uid, title="my own ledger board")
    writes = fake.writes
    report = await reconcile(target, apps(), LINKS)
    assert [s.action for s in report.steps if s.app == "finance/ledger"] == [Action.KEEP_EDIT]
    assert fake.writes == writes
    assert fake.dashboards[uid].dashboard["title"] == "my own ledger board"


async def test_deleted_app_is_collected_and_foreign_dashboards_are_untouched(grafana: Any) -> None:
    fake, target = grafana
    fake.add_foreign_dashboard("hand-made", "Team overview", ["correlator", "webapp"])
    fake.add_foreign_dashboard("other-tool", "Other", ["managed-by:someone-else"])
    await reconcile(target, apps(), LINKS)
    report = await reconcile(target, apps()[:2], LINKS)
    assert [(s.action, s.uid) for s in report.steps if s.action is Action.DELETE] == [
        (Action.DELETE, dashboard_uid("finance", "ledger"))
    ]
    assert dashboard_uid("finance", "ledger") not in fake.dashboards
    assert {"hand-made", "other-tool"} <= set(fake.dashboards)


async def test_a_failing_request_is_reported_and_the_rest_still_provisioned(grafana: Any) -> None:
    fake, target = grafana
    await reconcile(target, [], LINKS)  # warm up: search only
    fake.fail(500, times=1)
    report = await reconcile(target, apps(), LINKS)
    assert len(report.errors) == 1 and "Grafana answered 500" in report.errors[0][1]
    # The next resync repairs whatever the failure left undone.
    again = await reconcile(target, apps(), LINKS)
    assert again.errors == []
    assert len(fake.dashboards) == 3


async def test_a_dashboard_someone_else_made_with_the_apps_title_is_never_overwritten(
    grafana: Any,
) -> None:
    """Grafana's save with overwrite takes over a same-titled dashboard in the folder: so
    correlator looks first, leaves a dashboard without its managed-by tag alone, and reports
    the conflict for that app only."""
    fake, target = grafana
    await reconcile(target, apps()[1:2], LINKS)  # creates the storefront folder
    fake.add_foreign_dashboard("theirs", "shop / checkout", ["hand-made"])
    fake.dashboards["theirs"].folder_uid = team_folder("payments").uid
    fake.folders.setdefault(
        team_folder("payments").uid,
        {"uid": team_folder("payments").uid, "title": "Team payments", "id": 99},
    )
    before = copy.deepcopy(fake.dashboards["theirs"])
    for _ in range(2):  # and again at the next resync
        report = await reconcile(target, apps(), LINKS)
        assert [what for what, _ in report.errors] == ["shop/checkout"]
        why = report.errors[0][1]
        assert "theirs" in why and "not managed by correlator" in why
        assert [c.app for c in report.conflicts] == ["shop/checkout"]
        assert fake.dashboards["theirs"] == before
        assert dashboard_uid("shop", "checkout") not in fake.dashboards
        assert dashboard_uid("finance", "ledger") in fake.dashboards


async def test_wrong_token_and_unreachable_grafana_are_errors_not_crashes(grafana: Any) -> None:
    fake, target = grafana
    wrong = GrafanaTarget(target.base_url, "wrong-token")
    report = await reconcile(wrong, apps(), LINKS)
    assert report.steps == [] and "401" in report.errors[0][1]
    down = GrafanaTarget(f"http://127.0.0.1:{free_port()}", fake.token, timeout_s=2)
    report = await reconcile(down, apps(), LINKS)
    assert report.steps == [] and report.errors[0][0] == "Grafana"


async def test_dry_run_plans_without_writing(grafana: Any) -> None:
    fake, target = grafana
    report = await reconcile(target, apps(), LINKS, dry_run=True)
    assert report.count(Action.CREATE) == 3
    assert fake.writes == 0 and fake.dashboards == {}


async def test_a_conflict_is_counted_and_named_in_the_apps_problems(grafana: Any) -> None:
    fake, target = grafana
    fake.add_foreign_dashboard(dashboard_uid("shop", "checkout"), "shop / checkout", [])
    settings = load_settings(
        provisioning={"grafana_url": target.base_url, "grafana_token": fake.token}
    )
    metrics = Metrics()
    problems = await Provisioner(settings, metrics).run_once(apps(), [])
    assert "not managed by correlator" in "; ".join(problems["shop/checkout"])
    assert problems["shop/catalog"] == []
    assert metrics.registry.get_sample_value("correlator_provisioning_conflicts") == 1.0
    assert fake.dashboards[dashboard_uid("shop", "checkout")].dashboard["tags"] == []
