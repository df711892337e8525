"""The values people really set (issue 21, items 4, 6, 7, 8 and 9): the AlertmanagerConfig
routes with the credential that exists, the escape hatches render valid objects, every
combination that cannot run fails at render time naming the values, replicas spread across
nodes, and the chart follows the conventions (labels, unique names, a `helm test` hook that
really posts and reads back)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.helm.test_chart import (
    CHART,
    CRD_FILES,
    CREDENTIAL,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    crd_schema,
    find,
    render,
    validate_openapi,
)
from tests.support.processes import Service


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def valid(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server (or the CRD's schema) would accept it, on every Kubernetes."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_FILES:
        validate_openapi(obj, crd_schema(CRD_FILES[key], obj["apiVersion"].rsplit("/", 1)[1]))
    else:
        for kube in (KUBE_VERSIONS[0], KUBE_VERSIONS[-1]):
            kubernetes_validate.validate(obj, kube, strict=True)
    return obj


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = valid(find(objects, "Deployment"))["spec"]["template"]["spec"]
    return spec


def refusal(chart: helm.Chart, values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    return str(caught.value)


# --- item 4: the AlertmanagerConfig routes -----------------------------------------------------


def with_am(values: dict[str, Any], **am: Any) -> dict[str, Any]:
    return {**values, "alertmanagerConfig": {"enabled": True, **am}}


def http_config(chart: helm.Chart, values: dict[str, Any]) -> dict[str, Any]:
    spec = valid(find(render(chart, values), "AlertmanagerConfig"))["spec"]
    (receiver,) = spec["receivers"]
    config: dict[str, Any] = receiver["webhookConfigs"][0]["httpConfig"]
    return config


def secret_keys(chart: helm.Chart, values: dict[str, Any]) -> set[str]:
    return set(find(render(chart, values), "Secret")["data"])


def test_with_basic_auth_only_the_alertmanagerconfig_uses_basic_auth_from_keys_that_exist(
    chart: helm.Chart,
) -> None:
    """The previous chart always referenced CORRELATOR_AUTH_BEARER_TOKEN, which a basic-auth
    Secret does not hold: the operator rejected the AlertmanagerConfig."""
    values = with_am({"secrets": {"basicAuthUsername": "am", "basicAuthPassword": "p"}})
    config = http_config(chart, values)
    assert "authorization" not in config
    referenced = {config["basicAuth"][part]["key"] for part in ("username", "password")}
    assert referenced <= secret_keys(chart, values)
    assert {config["basicAuth"][part]["name"] for part in ("username", "password")} == {
        "correlator-secrets"
    }


def test_with_a_bearer_token_it_uses_the_token_the_secret_holds(chart: helm.Chart) -> None:
    values = with_am(CREDENTIAL)
    config = http_config(chart, values)
    assert config["authorization"]["credentials"]["key"] in secret_keys(chart, values)
    both = with_am(
        {"secrets": {"bearerToken": "t", "basicAuthUsername": "u", "basicAuthPassword": "p"}}
    )
    assert "authorization" in http_config(chart, both)  # bearer preferred when both exist


def test_an_existing_secret_with_other_key_names_is_referenced_by_those_names(
    chart: helm.Chart,
) -> None:
    values = with_am(
        {"secrets": {"existingSecret": "mine"}},
        auth="basic",
        credentials={
            "secretName": "alertmanager-to-correlator",
            "basicAuthUsernameKey": "user",
            "basicAuthPasswordKey": "pass",
        },
    )
    basic = http_config(chart, values)["basicAuth"]
    assert basic == {
        "username": {"name": "alertmanager-to-correlator", "key": "user"},
        "password": {"name": "alertmanager-to-correlator", "key": "pass"},
    }
    bearer = http_config(
        chart,
        with_am({"secrets": {"existingSecret": "mine"}}, credentials={"bearerTokenKey": "token"}),
    )
    assert bearer["authorization"]["credentials"] == {"name": "mine", "key": "token"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            with_am(CREDENTIAL, auth="basic"),
            "alertmanagerConfig.auth: basic needs secrets.basicAuthUsername and "
            "secrets.basicAuthPassword",
        ),
        (
            with_am(
                {"secrets": {"basicAuthUsername": "u", "basicAuthPassword": "p"}}, auth="bearer"
            ),
            "alertmanagerConfig.auth: bearer needs secrets.bearerToken",
        ),
    ],
)
def test_an_auth_whose_credential_is_missing_fails_naming_it(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    assert message in refusal(chart, values)


def test_app_namespaces_route_alerts_from_the_apps_namespaces(chart: helm.Chart) -> None:
    """Under the operator's matcher strategy None, the route's own matchers pick the alerts:
    appNamespaces makes one for the apps' namespaces, before the user's matchers."""
    values = with_am(
        CREDENTIAL,
        appNamespaces=["shop", "payments"],
        matchers=[{"name": "severity", "value": "critical", "matchType": "="}],
    )
    route = valid(find(render(chart, values), "AlertmanagerConfig"))["spec"]["route"]
    assert route["matchers"] == [
        {"name": "namespace", "value": "shop|payments", "matchType": "=~"},
        {"name": "severity", "value": "critical", "matchType": "="},
    ]


def test_the_matcher_strategy_is_documented_where_the_value_is_set() -> None:
    values_text = (CHART / "values.yaml").read_text()
    docs = (CHART.parents[1] / "docs" / "operations" / "kubernetes.md").read_text()
    for text in (values_text, docs):
        assert "alertmanagerConfigMatcherStrategy" in text and "OnNamespace" in text


# --- item 6: escape hatches --------------------------------------------------------------------

CA_BUNDLE = {
    "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}],
    "extraEnv": [{"name": "SSL_CERT_FILE", "value": "/etc/ssl/corporate/ca.crt"}],
}


def test_extra_env_volumes_args_and_sidecars_land_in_the_pod(chart: helm.Chart) -> None:
    values = {
        **CREDENTIAL,
        **CA_BUNDLE,
        "extraEnvFrom": [{"configMapRef": {"name": "proxy-settings"}}],
        "extraArgs": ["--log-level", "debug"],
        "extraContainers": [
            {"name": "proxy", "image": "registry.example/proxy:1", "args": ["--port", "9000"]}
        ],
    }
    pod = pod_spec(render(chart, values))
    main, sidecar = pod["containers"]
    assert sidecar["name"] == "proxy"
    assert main["args"] == [
        "serve",
        "--config",
        "/etc/correlator/config.yaml",
        "--log-level",
        "debug",
    ]
    assert {"name": "SSL_CERT_FILE", "value": "/etc/ssl/corporate/ca.crt"} in main["env"]
    assert main["envFrom"][-1] == {"configMapRef": {"name": "proxy-settings"}}
    assert {"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True} in main[
        "volumeMounts"
    ]
    assert {"name": "ca", "configMap": {"name": "corporate-ca"}} in pod["volumes"]


def test_the_documented_ca_bundle_example_is_the_one_tested() -> None:
    docs = (CHART.parents[1] / "docs" / "operations" / "kubernetes.md").read_text()
    example = docs.split("<!-- ca-bundle -->", 2)[1].split("```yaml", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(example) == CA_BUNDLE


def test_openshift_leaves_the_ids_to_the_platform(chart: helm.Chart) -> None:
    """restricted-v2 assigns a random UID and fsGroup: the chart's must go, the rest stay."""
    values = {
        **CREDENTIAL,
        "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
    }
    pod = pod_spec(render(chart, values))
    assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(pod["securityContext"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert "runAsUser" not in container["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_probes_are_tunable_but_keep_the_chart_paths(chart: helm.Chart) -> None:
    values = {
        **CREDENTIAL,
        "probes": {"liveness": {"timeoutSeconds": 10, "initialDelaySeconds": 5}},
    }
    (container,) = pod_spec(render(chart, values))["containers"]
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 10,
        "failureThreshold": 3,
        "initialDelaySeconds": 5,
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    wrong = {**CREDENTIAL, "probes": {"liveness": {"timeoutSeconds": "5s"}}}
    assert "at '/probes/liveness/timeoutSeconds'" in refusal(chart, wrong)
    assert "'path' not allowed" in refusal(
        chart, {**CREDENTIAL, "probes": {"readiness": {"path": "/healthz"}}}
    )


def test_topology_spread_constraints_are_kubernetes_list(chart: helm.Chart) -> None:
    mine = [{"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "ScheduleAnyway"}]
    pod = pod_spec(render(chart, {**CREDENTIAL, "topologySpreadConstraints": mine}))
    (constraint,) = pod["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "rack" and constraint["maxSkew"] == 2
    assert constraint["labelSelector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "correlator",
            "app.kubernetes.io/instance": RELEASE,
        }
    }


def test_a_pdb_can_say_min_available(chart: helm.Chart) -> None:
    values = {**CREDENTIAL, "store": "postgresql", "replicaCount": 3}
    values["secrets"] = {**CREDENTIAL["secrets"], "databaseUrl": "postgresql://u:p@pg/c"}
    pdb = valid(
        find(
            render(chart, {**values, "podDisruptionBudget": {"minAvailable": 2}}),
            "PodDisruptionBudget",
        )
    )
    assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
    pdb = valid(
        find(
            render(chart, {**values, "podDisruptionBudget": {"minAvailable": "50%"}}),
            "PodDisruptionBudget",
        )
    )
    assert pdb["spec"]["minAvailable"] == "50%"
    assert "podDisruptionBudget.minAvailable (3) must be less than the replicas (3)" in refusal(
        chart, {**values, "podDisruptionBudget": {"minAvailable": 3}}
    )


def test_the_servicemonitor_takes_relabelings(chart: helm.Chart) -> None:
    relabel = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]
    drop = [{"sourceLabels": ["__name__"], "regex": "correlator_http_.*", "action": "drop"}]
    values = {
        **CREDENTIAL,
        "serviceMonitor": {"enabled": True, "relabelings": relabel, "metricRelabelings": drop},
    }
    (endpoint,) = valid(find(render(chart, values), "ServiceMonitor"))["spec"]["endpoints"]
    assert endpoint["relabelings"] == relabel and endpoint["metricRelabelings"] == drop


def test_the_strict_schema_stays_strict(chart: helm.Chart) -> None:
    assert "additional properties 'extraEnvs' not allowed" in refusal(
        chart, {**CREDENTIAL, "extraEnvs": []}
    )
    assert "/spread/nodes" in refusal(chart, {**CREDENTIAL, "spread": {"nodes": "Sometimes"}})


# --- item 7: what cannot run fails at render time ------------------------------------------------

POSTGRES = {
    "store": "postgresql",
    "secrets": {"bearerToken": "t", "databaseUrl": "postgresql://u:p@pg/c"},
}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {
                **CREDENTIAL,
                "leaderElection": {"leaseDurationSeconds": 10, "renewDeadlineSeconds": 10},
            },
            "leaderElection.renewDeadlineSeconds (10) must be less than "
            "leaderElection.leaseDurationSeconds (10)",
        ),
        (
            {**CREDENTIAL, "leaderElection": {"retryPeriodSeconds": 12}},
            "leaderElection.retryPeriodSeconds (12) must be less than "
            "leaderElection.renewDeadlineSeconds (10)",
        ),
        (
            {**POSTGRES, "autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 3}},
            "autoscaling.minReplicas (4) is greater than autoscaling.maxReplicas (3)",
        ),
        (
            {**POSTGRES, "autoscaling": {"enabled": True}},
            "autoscaling.targetCPUUtilizationPercentage: 70 of resources.requests.cpu: 100m "
            "scales out at 70m of CPU, less than the 250m one analysis process takes",
        ),
        (
            {**POSTGRES, "autoscaling": {"enabled": True}},
            "Set resources.requests.cpu to at least 358m",
        ),
        (
            {**CREDENTIAL, "networkPolicy": {"enabled": True}, "ingress": {"enabled": True}},
            "networkPolicy.enabled with ingress.enabled needs networkPolicy.ingressNamespace",
        ),
        (
            {**CREDENTIAL, "prometheusRule": {"enabled": True}},
            "prometheusRule.enabled needs serviceMonitor.enabled",
        ),
        (
            {
                "secrets": {"bearerToken": "t", "grafanaToken": "g"},
                "discovery": {"enabled": True},
            },
            "discovery.enabled provisions Grafana: set config.provisioning.grafana_url",
        ),
        (
            {
                "externalSecret": {"enabled": True, "secretStoreRef": {"name": "vault"}},
            },
            "externalSecret.enabled needs externalSecret.data or externalSecret.dataFrom",
        ),
        (
            {**CREDENTIAL, "serviceAccount": {"create": False}},
            "serviceAccount.create: false needs serviceAccount.name",
        ),
    ],
    ids=[
        "renew-deadline-not-below-lease",
        "retry-not-below-renew-deadline",
        "hpa-min-above-max",
        "hpa-cpu-target-below-an-analysis",
        "hpa-cpu-says-which-request",
        "networkpolicy-ingress-without-namespace",
        "prometheusrule-without-servicemonitor",
        "discovery-without-grafana-url",
        "externalsecret-without-data",
        "existing-service-account-without-name",
    ],
)
def test_a_combination_that_cannot_run_fails_naming_the_values(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    assert message in refusal(chart, values)


@pytest.mark.parametrize(
    "values",
    [
        {**CREDENTIAL, "leaderElection": {"leaseDurationSeconds": 30, "renewDeadlineSeconds": 20}},
        {
            **POSTGRES,
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 3},
            "resources": {"requests": {"cpu": "358m"}},
        },
        {**POSTGRES, "autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": 1}}},
        {
            **CREDENTIAL,
            "networkPolicy": {"enabled": True, "ingressNamespace": "ingress-nginx"},
            "ingress": {"enabled": True},
        },
        {**CREDENTIAL, "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        {**CREDENTIAL, "serviceAccount": {"create": False, "name": "made-by-platform"}},
    ],
    ids=[
        "lease",
        "hpa-358m",
        "hpa-one-core",
        "networkpolicy",
        "self-monitoring",
        "service-account",
    ],
)
def test_the_same_values_set_consistently_render(chart: helm.Chart, values: dict[str, Any]) -> None:
    for obj in render(chart, values):
        valid(obj)


def test_an_existing_service_account_is_the_one_bound(chart: helm.Chart) -> None:
    values = {
        "secrets": {"bearerToken": "t", "grafanaToken": "g"},
        "discovery": {"enabled": True},
        "config": {"provisioning": {"grafana_url": "http://grafana"}},
        "serviceAccount": {"create": False, "name": "made-by-platform"},
    }
    objects = render(chart, values)
    assert "ServiceAccount" not in {o["kind"] for o in objects}
    assert pod_spec(objects)["serviceAccountName"] == "made-by-platform"
    subjects = [s for o in objects if o["kind"].endswith("RoleBinding") for s in o["subjects"]]
    assert subjects and {s["name"] for s in subjects} == {"made-by-platform"}


# --- item 8: drains ----------------------------------------------------------------------------


def test_replicas_never_share_a_node_by_default(chart: helm.Chart) -> None:
    """The previous chart spread with ScheduleAnyway: every replica could land on one node, and
    one drain took them all."""
    pod = pod_spec(render(chart, {**POSTGRES, "replicaCount": 3}))
    by_key = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert by_key["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert by_key["kubernetes.io/hostname"]["matchLabelKeys"] == ["pod-template-hash"]
    # Zones stay best-effort: a cluster without zone labels still schedules.
    assert by_key["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"


def test_readiness_probes_the_route_that_stays_up_through_a_store_outage(chart: helm.Chart) -> None:
    (container,) = pod_spec(render(chart, CREDENTIAL))["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    rule = find(
        render(
            chart,
            {
                **CREDENTIAL,
                "serviceMonitor": {"enabled": True},
                "prometheusRule": {"enabled": True},
            },
        ),
        "PrometheusRule",
    )
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "correlator_store_up" in alerts["CorrelatorStoreUnavailable"]["expr"]


# --- item 9: conventions -----------------------------------------------------------------------


def test_pods_carry_the_chart_and_version_labels(chart: helm.Chart) -> None:
    labels = find(render(chart, CREDENTIAL), "Deployment")["spec"]["template"]["metadata"]["labels"]
    chart_meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert labels["helm.sh/chart"] == f"correlator-{chart_meta['version']}"
    assert labels["app.kubernetes.io/version"] == chart_meta["appVersion"]


def test_one_release_name_in_two_namespaces_shares_no_object(chart: helm.Chart) -> None:
    values = {
        "secrets": {"bearerToken": "t", "grafanaToken": "g"},
        "discovery": {"enabled": True},
        "config": {"provisioning": {"grafana_url": "http://grafana"}},
    }
    namespaced = {
        **values,
        "rbac": {"namespaces": ["shop"]},
        "grafanaDashboard": {"enabled": True, "namespace": "grafana"},
    }

    def names(values: dict[str, Any], namespace: str) -> set[tuple[str, str, str]]:
        manifests = chart.render(copy.deepcopy(values), name=RELEASE, namespace=namespace)
        objects = [
            d
            for p, t in manifests.items()
            if not p.endswith("NOTES.txt")
            for d in yaml.safe_load_all(t)
            if d
        ]
        return {
            (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects
        }

    for case in (values, namespaced):
        team_a, team_b = names(case, "team-a"), names(case, "team-b")
        assert team_a and not team_a & team_b, team_a & team_b


def test_chart_yaml_has_the_metadata_a_chart_repository_shows() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["icon"].startswith("https://") and meta["home"].startswith("https://")
    assert meta["sources"] and meta["maintainers"]
    icon = meta["icon"].split("/main/", 1)[1]
    assert (CHART.parents[1] / icon).is_file()  # the icon the URL names is in the repository


def test_the_crd_upgrade_step_is_documented() -> None:
    docs = (CHART.parents[1] / "docs" / "operations" / "kubernetes.md").read_text()
    assert "kubectl apply --server-side -f helm/correlator/crds/" in docs


def test_the_default_image_is_the_one_the_repository_builds() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    repository = values["image"]["repository"]
    dockerfile = (CHART.parents[1] / "Dockerfile").read_text()
    docs = (CHART.parents[1] / "docs" / "operations" / "kubernetes.md").read_text()
    assert f"-t {repository}:" in dockerfile and f"-t {repository}:" in docs
    assert "ARG BASE=" in dockerfile and "@sha256:" in dockerfile


def test_the_helm_test_hook_is_a_restricted_pod_outside_the_apps_selectors(
    chart: helm.Chart,
) -> None:
    objects = render(chart, {**CREDENTIAL, "networkPolicy": {"enabled": True}})
    test_pod = valid(find(objects, "Pod"))
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    selector = find(objects, "Service")["spec"]["selector"]
    labels = test_pod["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in selector.items())  # not a Service endpoint
    (container,) = test_pod["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The NetworkPolicy lets it reach the service.
    (rule,) = find(objects, "NetworkPolicy")["spec"]["ingress"]
    pod_selectors = [f["podSelector"]["matchLabels"] for f in rule["from"] if "podSelector" in f]
    assert any(all(labels.get(k) == v for k, v in s.items()) for s in pod_selectors)


def test_the_helm_test_posts_a_notification_and_reads_it_back(
    chart: helm.Chart, tmp_path: Path
) -> None:
    """The hook's script, as the test Pod runs it (its command and env from the render),
    against a real `correlator serve` with the Secret's credential."""
    test_pod = find(render(chart, CREDENTIAL), "Pod")
    (container,) = test_pod["spec"]["containers"]
    assert container["command"] == ["python3", "-c"]
    (script,) = container["args"]
    service = Service(
        tmp_path,
        env={
            "CORRELATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'correlator.db'}",
            "CORRELATOR_AUTH_BEARER_TOKEN": "webhook-SECRET",
            "CORRELATOR_QUEUE_WORKERS": "0",
        },
    ).start()
    try:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["CORRELATOR_URL"] == f"http://correlator.{NAMESPACE}.svc:8080"
        run_env = {"CORRELATOR_URL": service.url, "CORRELATOR_AUTH_BEARER_TOKEN": "webhook-SECRET"}
        done = subprocess.run(
            [sys.executable, "-c", script], env=run_env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "read back" in done.stdout
        wrong = subprocess.run(
            [sys.executable, "-c", script],
            env={**run_env, "CORRELATOR_AUTH_BEARER_TOKEN": "stale"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode != 0 and "401" in wrong.stderr  # a token the pods do not know
    finally:
        service.stop()
