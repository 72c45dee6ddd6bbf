"""deploy/kubernetes/: Kubernetes' own schemas for the core objects (kubernetes-validate
bundles them: no cluster, no network), and the wiring between the objects and with KEDA."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_support import (
    DOCKERFILE,
    K8S_DIR,
    metrics_port_default,
    settings_env_names,
    settings_from,
    shutdown_budget_s,
)

NAMESPACE = "sms-worker"
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]
EXPECTED_KINDS = {
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
# KEDA's fields (keda.sh/v1alpha1), to catch a misspelt key the API server would drop.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
TRIGGER_KEYS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
SQS_METADATA = {
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "awsRegion",
    "awsEndpoint",
    "identityOwner",
    "scaleOnInFlight",
    "scaleOnDelayed",
}
POD_IDENTITY_KEYS = {"provider", "roleArn", "identityOwner", "identityId"}
# The Prometheus Operator's ServiceMonitor fields (monitoring.coreos.com/v1) used here.
SERVICE_MONITOR_SPEC = {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels"}
SERVICE_MONITOR_ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path, document))
    return found


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return [d for _, d in _documents() if d.get("kind") != "Kustomization"]


def _only(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [m for m in manifests if m["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return _only(manifests, "Deployment")


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(found)


@pytest.fixture(scope="module")
def config(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return dict(_only(manifests, "ConfigMap")["data"])


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def test_kinds_and_api_versions(manifests: list[dict[str, Any]]) -> None:
    kinds = [(m["apiVersion"], m["kind"]) for m in manifests]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == EXPECTED_KINDS
    for manifest in manifests:
        metadata = manifest["metadata"]
        if manifest["kind"] == "Namespace":
            assert metadata["name"] == NAMESPACE
        else:
            assert metadata["namespace"] == NAMESPACE, manifest["kind"]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert kustomization["resources"][0] == "namespace.yaml"
    assert kustomization["resources"][-1] == "keda.yaml", "KEDA objects after the Deployment"


# --- Kubernetes' own schemas --------------------------------------------------------------


def _validate(manifest: dict[str, Any], version: str) -> None:
    utils = pytest.importorskip("kubernetes_validate.utils", reason="needs kubernetes-validate")
    utils.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_follow_the_kubernetes_schemas(
    manifests: list[dict[str, Any]], version: str
) -> None:
    pytest.importorskip("kubernetes_validate.utils", reason="needs kubernetes-validate")
    for manifest in manifests:
        if manifest["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/")):
            continue  # a CRD: checked field by field below
        _validate(manifest, version)


def test_the_schemas_reject_a_misspelt_field(deployment: dict[str, Any]) -> None:
    utils = pytest.importorskip("kubernetes_validate.utils", reason="needs kubernetes-validate")
    broken = copy.deepcopy(deployment)
    pod = broken["spec"]["template"]["spec"]
    pod["terminationGracePeriod"] = pod.pop("terminationGracePeriodSeconds")
    with pytest.raises(utils.ValidationError):
        utils.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# --- the Deployment -----------------------------------------------------------------------


def test_the_pod_runs_the_worker_from_the_config(
    deployment: dict[str, Any], container: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    assert container.get("args", ["run"]) == ["run"]
    assert "command" not in container, "the image's ENTRYPOINT is sms-worker"
    sources = container["envFrom"]
    config_map = _only(manifests, "ConfigMap")["metadata"]["name"]
    assert {"configMapRef": {"name": config_map}} in sources
    secrets = [s["secretRef"] for s in sources if "secretRef" in s]
    assert all(s.get("optional") is True for s in secrets), "no Secret is needed to start"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _only(manifests, "ServiceAccount")["metadata"]["name"]
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"


def test_the_config_is_valid_worker_settings(config: dict[str, str]) -> None:
    names = {k for k in config if k.startswith("SMS_WORKER_")}
    assert names <= settings_env_names(), names - settings_env_names()
    assert set(config) - names <= {"AWS_REGION"}, "credentials come from IRSA, not the config"
    settings = settings_from(config)
    assert settings.region == config["AWS_REGION"]
    assert urlsplit(settings.queue_url).hostname == f"sqs.{config['AWS_REGION']}.amazonaws.com"


def test_probes(container: dict[str, Any], config: dict[str, str]) -> None:
    port = int(config.get("SMS_WORKER_METRICS_PORT", metrics_port_default()))
    assert port == metrics_port_default() == 9102
    assert [_port(container, p["containerPort"]) for p in container["ports"]] == [port]
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port(container, get["port"]) == port, probe
    if "startupProbe" in container:
        get = container["startupProbe"]["httpGet"]
        assert (get["path"], _port(container, get["port"])) == ("/healthz", port)


def test_the_pod_has_time_to_shut_down(deployment: dict[str, Any]) -> None:
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 30
    assert grace > shutdown_budget_s()


def test_the_pod_is_locked_down(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    user = re.search(r"^USER\s+(\d+)(?::(\d+))?", DOCKERFILE.read_text(), re.MULTILINE)
    assert user, "the Dockerfile sets a numeric USER"
    assert pod["runAsUser"] == int(user[1]) != 0
    if user[2]:
        assert pod["runAsGroup"] == int(user[2])
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    own = container["securityContext"]
    assert own["allowPrivilegeEscalation"] is False
    assert own["readOnlyRootFilesystem"] is True
    assert own["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    assert "/tmp" in mounts, "a writable /tmp on a read-only root"


def test_resources(container: dict[str, Any]) -> None:
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_the_service_account_is_annotated_for_irsa(manifests: list[dict[str, Any]]) -> None:
    annotations = _only(manifests, "ServiceAccount")["metadata"]["annotations"]
    assert re.fullmatch(
        r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", annotations["eks.amazonaws.com/role-arn"]
    )


# --- KEDA ---------------------------------------------------------------------------------


def test_the_scaled_object_scales_the_deployment(
    manifests: list[dict[str, Any]], deployment: dict[str, Any]
) -> None:
    spec = _only(manifests, "ScaledObject")["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC, set(spec) - SCALED_OBJECT_SPEC
    target = spec["scaleTargetRef"]
    assert target["name"] == deployment["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_the_trigger_is_the_workers_queue(
    manifests: list[dict[str, Any]], config: dict[str, str]
) -> None:
    (trigger,) = _only(manifests, "ScaledObject")["spec"]["triggers"]
    assert set(trigger) <= TRIGGER_KEYS, set(trigger) - TRIGGER_KEYS
    assert trigger["type"] == "aws-sqs-queue"
    metadata = trigger["metadata"]
    assert set(metadata) <= SQS_METADATA, set(metadata) - SQS_METADATA
    assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata values are strings"
    assert metadata["queueURL"] == config["SMS_WORKER_QUEUE_URL"]
    assert metadata["awsRegion"] == config["AWS_REGION"]
    assert int(metadata["queueLength"]) > 0
    assert metadata.get("scaleOnInFlight", "true") in ("true", "false")


def test_the_trigger_authenticates_with_pod_identity(manifests: list[dict[str, Any]]) -> None:
    (trigger,) = _only(manifests, "ScaledObject")["spec"]["triggers"]
    authentication = _only(manifests, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    identity = authentication["spec"]["podIdentity"]
    assert set(identity) <= POD_IDENTITY_KEYS, set(identity) - POD_IDENTITY_KEYS
    assert identity["provider"] == "aws"
    assert identity.get("identityOwner", "keda") in ("keda", "workload")
    assert not ("roleArn" in identity and "identityOwner" in identity), "mutually exclusive"


# --- the metrics Service, ServiceMonitor, PodDisruptionBudget and NetworkPolicy -------------


def _selects(selector: dict[str, Any], deployment: dict[str, Any]) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_the_metrics_service_selects_the_pods_metrics_port(
    manifests: list[dict[str, Any]], deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    service = _only(manifests, "Service")
    assert _selects(service["spec"]["selector"], deployment)
    assert service["spec"]["clusterIP"] == "None"  # headless: Prometheus scrapes each pod
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics"
    assert _port(container, port["targetPort"]) == metrics_port_default()


def test_the_service_monitor_scrapes_the_metrics_service(
    manifests: list[dict[str, Any]],
) -> None:
    monitor = _only(manifests, "ServiceMonitor")
    spec = monitor["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC, set(spec) - SERVICE_MONITOR_SPEC
    service = _only(manifests, "Service")
    wanted = spec["selector"]["matchLabels"]
    assert all(service["metadata"]["labels"].get(k) == v for k, v in wanted.items())
    assert spec["namespaceSelector"]["matchNames"] == [NAMESPACE]
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT, set(endpoint) - SERVICE_MONITOR_ENDPOINT
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    seconds = {k: int(endpoint[k].rstrip("s")) for k in ("interval", "scrapeTimeout")}
    assert seconds["scrapeTimeout"] < seconds["interval"]


def test_the_disruption_budget_takes_one_worker_at_a_time(
    manifests: list[dict[str, Any]], deployment: dict[str, Any]
) -> None:
    budget = _only(manifests, "PodDisruptionBudget")["spec"]
    assert _selects(budget["selector"]["matchLabels"], deployment)
    assert budget == {"maxUnavailable": 1, "selector": budget["selector"]}  # never blocks a drain


def test_the_network_policy_lets_in_prometheus_and_out_dns_and_https(
    manifests: list[dict[str, Any]], deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    spec = _only(manifests, "NetworkPolicy")["spec"]
    assert _selects(spec["podSelector"]["matchLabels"], deployment)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert [_port(container, p["port"]) for p in ingress["ports"]] == [metrics_port_default()]
    out = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    assert out == {(53, "UDP"), (53, "TCP"), (443, "TCP")}
