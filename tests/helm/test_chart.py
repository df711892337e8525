"""The Helm chart, rendered and linted by the real Helm v4 SDK (helm-python-sdk, no cluster):
every built-in object validated with kubernetes-validate for each Kubernetes release from 1.29
to the newest it knows, every prometheus-operator and External Secrets object against its CRD
schema in tests/contracts/, the rendered config loaded by correlator itself, the self-alerts
through promtool."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.version import Version

from correlator.settings import load_settings
from tests.support import structural
from tests.support.tools import binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "correlator"
CONTRACTS = ROOT / "tests" / "contracts"
RELEASE, NAMESPACE = "correlator", "correlator"
KUBE_VERSIONS = [
    v
    for v in sorted(set(kubernetes_validate.utils.all_versions()), key=Version)
    if Version(v) >= Version("1.29")
]
CRD_FILES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator/"
    "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-operator/"
    "monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): "prometheus-operator/"
    "monitoring.coreos.com_alertmanagerconfigs.yaml",
    ("external-secrets.io/v1", "ExternalSecret"): "external-secrets/"
    "external-secrets.io_externalsecrets.yaml",
}

HA_POSTGRES = {
    "replicaCount": 3,
    "store": "postgresql",
    "secrets": {"existingSecret": "correlator-credentials"},
    "discovery": {"enabled": True},
    "config": {"provisioning": {"grafana_url": "http://grafana.monitoring"}},
}
EXTERNAL_SECRET = {
    "replicaCount": 2,
    "store": "postgresql",
    "externalSecret": {
        "enabled": True,
        "secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
        "data": [
            {
                "secretKey": "CORRELATOR_DATABASE_URL",
                "remoteRef": {"key": "correlator/db", "property": "url"},
            },
            {
                "secretKey": "CORRELATOR_AUTH_BEARER_TOKEN",
                "remoteRef": {"key": "correlator/webhook", "property": "token"},
            },
        ],
    },
}
EVERYTHING_ON = {
    "replicaCount": 2,
    "store": "postgresql",
    "secrets": {
        "databaseUrl": "postgresql://correlator:db-SECRET@pg:5432/correlator",
        "bearerToken": "webhook-SECRET",
        "grafanaToken": "glsa_SECRET",
        "lokiBearerToken": "loki-SECRET",
        "notifySinks": [
            {"type": "slack", "name": "team-chat", "token": "xoxb-SECRET", "channel": "#inc"}
        ],
    },
    "discovery": {"enabled": True},
    "rbac": {"prometheusRules": True},
    "config": {
        "provisioning": {"grafana_url": "http://grafana.monitoring"},
        "prometheus": {"url": "http://prometheus-operated.monitoring:9090"},
        "loki": {"url": "http://loki-gateway.logging"},
        "queue": {"workers": 4},
    },
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
    "resources": {"requests": {"cpu": "500m", "memory": "576Mi"}, "limits": {"memory": "1Gi"}},
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "tls"}]},
    "networkPolicy": {"enabled": True, "ingressNamespace": "ingress-nginx"},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True, "additionalAlertLabels": {"team": "platform"}},
    "grafanaDashboard": {"enabled": True},
    "alertmanagerConfig": {
        "enabled": True,
        "matchers": [{"name": "severity", "value": "critical|warning", "matchType": "=~"}],
    },
}
SELF_MONITORING = {
    "secrets": {"bearerToken": "webhook-SECRET"},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
}
# The one value the chart requires: a webhook credential (it makes none that a render could
# change, issue 21).
CREDENTIAL = {"secrets": {"bearerToken": "webhook-SECRET"}}
NAMESPACED = {
    **CREDENTIAL,
    "discovery": {"enabled": True},
    "rbac": {"namespaces": ["shop", "payments"], "prometheusRules": True},
    "config": {"provisioning": {"target": "files", "out_dir": "/tmp/provisioned"}},
}
MATRIX = {
    "defaults": CREDENTIAL,
    "ha-postgresql-existing-secret": HA_POSTGRES,
    "external-secret": EXTERNAL_SECRET,
    "everything-on": EVERYTHING_ON,
    "namespaced-rbac": NAMESPACED,
}


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads a lone `=` as YAML 1.1's value key; Kubernetes (YAML 1.2) reads a string."""


Yaml12Loader.add_constructor("tag:yaml.org,2002:value", Yaml12Loader.construct_yaml_str)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader)


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.load_all(text, Loader=Yaml12Loader) if doc]
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"{kind} {name or ''}: {len(matches)} rendered"
    return matches[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def crd_schema(relative: str, version: str) -> dict[str, Any]:
    crd = load_yaml((CONTRACTS / relative).read_text())
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"{relative} has no version {version}")


def validate_openapi(instance: Any, schema: dict[str, Any]) -> None:
    """As the API server applies a CRD's structural schema: validated, and no field it prunes."""
    structural.validate(instance, schema)


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_rendered_object_is_valid_for_every_supported_kubernetes(
    chart: helm.Chart, case: str
) -> None:
    objects = render(chart, MATRIX[case])
    assert objects
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in CRD_FILES:
            version = obj["apiVersion"].rsplit("/", 1)[1]
            validate_openapi(obj, crd_schema(CRD_FILES[key], version))
            continue
        for kube in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, kube, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(
                    f"{case}: {obj['kind']}/{obj['metadata']['name']} on {kube}: {exc.message}"
                ) from None


def test_the_matrix_renders_what_each_case_asks_for(chart: helm.Chart) -> None:
    assert kinds(render(chart, CREDENTIAL)) == [
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Pod",  # the `helm test` hook
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    assert kinds(render(chart, EVERYTHING_ON)) == [
        "AlertmanagerConfig",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "NetworkPolicy",
        "Pod",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    ha = render(chart, HA_POSTGRES)
    assert "Secret" not in kinds(ha) and "PersistentVolumeClaim" not in kinds(ha)
    assert find(ha, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert find(ha, "Deployment")["spec"]["replicas"] == 3
    assert "replicas" not in find(render(chart, EVERYTHING_ON), "Deployment")["spec"]  # the HPA's
    external = render(chart, EXTERNAL_SECRET)
    assert find(external, "ExternalSecret")["spec"]["target"]["name"] == "correlator-secrets"


def test_lint_strict_is_clean(chart: helm.Chart) -> None:
    for values in MATRIX.values():
        for kube in ("v1.29.0", f"v{KUBE_VERSIONS[-1]}"):
            report = helm.lint(CHART, copy.deepcopy(values), strict=True, kube_version=kube)
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            assert problems == [] and report["errors"] == [], report


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_pods_meet_the_restricted_pod_security_standard(chart: helm.Chart, case: str) -> None:
    pod = find(render(chart, MATRIX[case]), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod and "hostPID" not in pod and "hostIPC" not in pod
    for volume in pod["volumes"]:
        assert set(volume) & {"configMap", "emptyDir", "persistentVolumeClaim", "secret"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert writable == {"/tmp", "/var/lib/correlator"}
        assert {p for p in ("livenessProbe", "readinessProbe", "startupProbe") if p in container}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    # The API token is mounted only where discovery (and its Lease) need it.
    assert pod["automountServiceAccountToken"] is (case != "defaults" and case != "external-secret")


def rules_of(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_binding: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole"):
            where = obj["metadata"].get("namespace", "*")
            by_binding[f"{obj['kind']}/{where}/{obj['metadata']['name']}"] = obj["rules"]
    return by_binding


def test_rbac_grants_only_what_discovery_provisioning_and_the_leader_need(
    chart: helm.Chart,
) -> None:
    webapps = {
        "apiGroups": ["platform.correlator.dev"],
        "resources": ["webapplications"],
        "verbs": ["get", "list", "watch"],
    }
    status = {
        "apiGroups": ["platform.correlator.dev"],
        "resources": ["webapplications/status"],
        "verbs": ["patch"],
    }
    prometheus_rules = {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["prometheusrules"],
        "verbs": ["get", "list", "create", "update", "delete"],
    }
    leases = [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["correlator-provisioning"],
            "verbs": ["get", "update"],
        },
    ]
    assert rules_of(render(chart, HA_POSTGRES)) == {
        "ClusterRole/*/correlator-correlator-discovery": [webapps, status],
        "Role/correlator/correlator-leader": leases,
    }
    assert rules_of(render(chart, NAMESPACED)) == {
        "Role/shop/correlator-correlator-discovery": [webapps, status, prometheus_rules],
        "Role/payments/correlator-correlator-discovery": [webapps, status, prometheus_rules],
        "Role/correlator/correlator-leader": leases,
    }
    assert rules_of(render(chart, CREDENTIAL)) == {}  # no discovery: no API access at all
    # The lease name the Role allows is the one the service is configured with.
    config = yaml.safe_load(find(render(chart, HA_POSTGRES), "ConfigMap")["data"]["config.yaml"])
    assert config["leader"]["lease_name"] == "correlator-provisioning"


def secret_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    secret = find(objects, "Secret")
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_secrets_live_only_in_the_secret(chart: helm.Chart) -> None:
    objects = render(chart, EVERYTHING_ON)
    env = secret_env(objects)
    assert env["CORRELATOR_DATABASE_URL"].startswith("postgresql://correlator:db-SECRET@")
    assert json.loads(env["CORRELATOR_NOTIFY_SINKS"])[0]["token"] == "xoxb-SECRET"
    everything_else = yaml.safe_dump([o for o in objects if o["kind"] != "Secret"])
    assert "SECRET" not in everything_else  # not in the ConfigMap, env literals or annotations
    deployment = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert deployment["envFrom"] == [{"secretRef": {"name": "correlator-secrets"}}]
    assert all("value" not in e for e in deployment["env"])  # downward API and the Secret only
    database = next(e for e in deployment["env"] if e["name"] == "CORRELATOR_DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"] == {
        "name": "correlator-secrets",
        "key": "CORRELATOR_DATABASE_URL",
    }  # required: a Secret without it stops the pod rather than falling back to SQLite


def test_without_a_credential_the_render_fails_naming_the_values(chart: helm.Chart) -> None:
    """No cluster to find the release's token in (helm template, Argo CD): no token is made up,
    since each render would make another one."""
    with pytest.raises(helm.HelmError) as caught:
        render(chart, {})
    for value in ("secrets.bearerToken", "secrets.existingSecret", "externalSecret.enabled"):
        assert value in str(caught.value)


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_the_rendered_config_is_one_correlator_accepts(
    chart: helm.Chart, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(chart, MATRIX[case])
    config_file = tmp_path / "config.yaml"
    config_file.write_text(find(objects, "ConfigMap", "correlator-config")["data"]["config.yaml"])
    env = secret_env(objects) if "Secret" in kinds(objects) else {}
    if case in ("ha-postgresql-existing-secret", "external-secret"):  # what the user's Secret holds
        env = {
            "CORRELATOR_DATABASE_URL": "postgresql://c:pw@pg/correlator",
            "CORRELATOR_AUTH_BEARER_TOKEN": "t",
            "CORRELATOR_PROVISIONING_GRAFANA_TOKEN": "g",
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CORRELATOR_LEADER_NAMESPACE", NAMESPACE)
    settings = load_settings(config_file)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 8080
    values = MATRIX[case]
    assert settings.kubernetes.discovery is values.get("discovery", {}).get("enabled", False)
    if values.get("store", "sqlite") == "sqlite":
        assert settings.database.url == "sqlite:////var/lib/correlator/correlator.db"
    else:
        assert settings.database.url.startswith("postgresql://")
    assert settings.leader.lease_name == "correlator-provisioning"
    assert settings.auth.bearer_token is not None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2}, "replicaCount: 2 needs store: postgresql"),
        ({"replicaCont": 2}, "additional properties 'replicaCont' not allowed"),
        ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
        ({"store": "mysql"}, "at '/store'"),
        ({"serviceMonitor": {"enabled": "yes"}}, "at '/serviceMonitor/enabled'"),
        ({"config": {"databse": {}}}, "databse"),
        (
            {"config": {"auth": {"bearer_token": "x"}}},
            "config.auth.bearer_token is a secret",
        ),
        (
            {"secrets": {"existingSecret": "mine", "bearerToken": "x"}},
            "must be empty with secrets.existingSecret",
        ),
        ({"store": "postgresql"}, "store: postgresql needs secrets.databaseUrl"),
        ({"discovery": {"enabled": True}}, "discovery.enabled provisions Grafana"),
    ],
)
def test_bad_values_fail_with_a_message_that_names_the_field(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError) as caught:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(caught.value)


def test_the_webapplication_crd_accepts_the_examples_and_refuses_a_broken_one() -> None:
    crd = yaml.safe_load((CHART / "crds" / "webapplication.yaml").read_text())
    for kube in KUBE_VERSIONS:
        kubernetes_validate.validate(crd, kube, strict=True)
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = version["schema"]["openAPIV3Schema"]
    examples = [
        doc
        for path in sorted((ROOT / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "WebApplication"
    ]
    assert examples
    for example in examples:
        assert example["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
        validate_openapi(example, schema)
    broken = copy.deepcopy(examples[0])
    broken["spec"].pop("image", None)
    broken["spec"]["replicas"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        validate_openapi(broken, schema)


@pytest.fixture(scope="module")
def promtool() -> str:
    return binary("promtool")


def test_self_alerts_pass_promtool_check_and_their_unit_tests(
    chart: helm.Chart, promtool: str, tmp_path: Path
) -> None:
    rule = find(render(chart, SELF_MONITORING), "PrometheusRule")
    rules_file = tmp_path / "self-alerts.rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(Path(__file__).with_name("self-alerts.test.yaml"), tmp_path)
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "self-alerts.test.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    tested_alerts = set(
        Path(__file__).with_name("self-alerts.test.yaml").read_text().split("alertname: ")[1:]
    )
    assert {name.split()[0] for name in tested_alerts} == alerts  # every alert has a test


def test_the_dashboard_queries_only_metrics_correlator_exports() -> None:
    from correlator.metrics import Metrics

    families = {family.name for family in Metrics().registry.collect()}
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = {
                word.split("{")[0]
                for word in target["expr"].replace("(", " ").split()
                if word.startswith("correlator_")
            }
            for name in names:
                base = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_info")
                assert base in families, f"{panel['title']}: {name} is not exported"


def checkov_command() -> str:
    for candidate in (ROOT / ".venv" / "checkov" / "bin" / "checkov", shutil.which("checkov")):
        if candidate is not None and Path(candidate).exists():
            return str(candidate)
    pytest.fail("checkov is not installed: tests/run.sh installs it into .venv/checkov")


def test_checkov_finds_nothing_beyond_the_named_skips(chart: helm.Chart, tmp_path: Path) -> None:
    skips = yaml.safe_load(Path(__file__).with_name("checkov-skips.yaml").read_text())
    assert all(isinstance(reason, str) and len(reason) > 40 for reason in skips.values())
    for case, values in MATRIX.items():
        manifests = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
        documents = [t for p, t in sorted(manifests.items()) if not p.endswith("NOTES.txt")]
        (tmp_path / f"{case}.yaml").write_text("\n---\n".join(d for d in documents if d.strip()))
    done = subprocess.run(
        [
            *(checkov_command(), "-d", str(tmp_path), "--framework", "kubernetes"),
            *("--quiet", "--compact", "--output", "json", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = {
        (check["check_id"], check["resource"], Path(check["file_path"]).stem)
        for report in reports
        for check in report["results"]["failed_checks"]
    }
    passed = sum(report["summary"]["passed"] for report in reports)
    assert passed > 50  # checkov did look at the objects
    unexpected = sorted(f for f in failed if f[0] not in skips)
    assert unexpected == [], "fix these or name them, with the reason, in checkov-skips.yaml"
    assert {f[0] for f in failed} == set(skips), "a named skip no longer fails: remove it"


def test_every_settings_section_is_reachable_from_values() -> None:
    from correlator.settings import Settings

    schema = json.loads((CHART / "values.schema.json").read_text())
    sections = schema["properties"]["config"]["propertyNames"]["enum"]
    assert sorted(sections) == sorted(Settings.model_fields)


def test_the_self_alerts_query_only_metrics_correlator_exports(chart: helm.Chart) -> None:
    from correlator.metrics import Metrics

    families = {family.name for family in Metrics().registry.collect()} | {"up"}
    rule = find(render(chart, SELF_MONITORING), "PrometheusRule")
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            for name in re.findall(r"\b(correlator_\w+|up)\{", alert["expr"]):
                base = name.removesuffix("_total").removesuffix("_bucket")
                assert base in families, f"{alert['alert']}: {name} is not exported"
