"""deploy/observability/: the alert rules and the Grafana dashboard ask only for metrics (and
label values) that a real worker's /metrics exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from deploy_support import ROOT
from prometheus_client.parser import text_string_to_metric_families
from support import Aws, Env, enqueue, make_settings, running_worker, wait_for

from worker.devstack.stack import free_port

OBSERVABILITY = ROOT / "deploy" / "observability"
ALERTS = OBSERVABILITY / "alerts.yml"
DASHBOARD = OBSERVABILITY / "dashboard.json"
OURS = re.compile(r"\b((?:sms_worker|process|python)_[a-zA-Z0-9_]+)")
SELECTOR = re.compile(r"\b((?:sms_worker|process|python)_[a-zA-Z0-9_]+)\{([^}]*)\}")
EQUALS = re.compile(r'(\w+)\s*=\s*"([^"]*)"')  # =, not =~ or !=
# What the alerts must cover (issue #13), by a metric each names.
COVERED = {
    "quota throttling": "sms_worker_throttled_total",
    "quota cool-down": "sms_worker_cooldown_active",
    "dead letters": "sms_worker_queue_messages",
    "age of the oldest message": "sms_worker_queue_oldest_message_age_seconds",
    "failures": "sms_worker_dependency_failures_total",
    "not ready": "sms_worker_ready",
}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


@pytest.fixture
async def exported(aws: Aws, env: Env) -> dict[str, list[dict[str, str]]]:
    """Each series name a real worker exports (counters' ``_total``, histograms' parts, and
    each family's own name) with the label sets of its samples."""
    await enqueue(aws.sqs, env.dlq_url, ["dead"])
    port = free_port()
    settings = make_settings(env, metrics_port=port, metrics_host="127.0.0.1")
    async with aiohttp.ClientSession() as http, running_worker(settings) as worker:

        async def sampled() -> bool:
            return worker.queues.sampled_at is not None

        await wait_for(sampled, timeout_s=10)
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            text = await r.text()
    names: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        for suffix in suffixes:
            names.setdefault(family.name + suffix, [])
        for s in family.samples:
            names.setdefault(s.name, []).append(s.labels)
    return names


def _check(expr: str, exported: dict[str, list[dict[str, str]]]) -> list[str]:
    problems = [f"{name} is not exported" for name in OURS.findall(expr) if name not in exported]
    for name, matchers in SELECTOR.findall(expr):
        wanted = dict(EQUALS.findall(matchers))
        if not wanted or not name.startswith("sms_worker_") or name not in exported:
            continue
        if not any(wanted.items() <= labels.items() for labels in exported[name]):
            problems.append(f"no {name} series with {wanted}")
    return problems


def test_the_alert_rules_ask_for_exported_metrics(
    exported: dict[str, list[dict[str, str]]],
) -> None:
    problems = {r["alert"]: _check(r["expr"], exported) for r in rules()}
    assert not {k: v for k, v in problems.items() if v}
    assert ("sms_worker_queue_messages", "dlq") in {
        (name, labels.get("queue")) for name, series in exported.items() for labels in series
    }


def test_the_dashboard_asks_for_exported_metrics(
    exported: dict[str, list[dict[str, str]]],
) -> None:
    problems = {expr: _check(expr, exported) for expr in dashboard_exprs()}
    assert not {k: v for k, v in problems.items() if v}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= set(exported)


def test_the_rules_cover_what_matters() -> None:
    exprs = " ".join(r["expr"] for r in rules())
    missing = {what: name for what, name in COVERED.items() if name not in exprs}
    assert not missing
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "sms-worker"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


def test_a_missing_metric_is_caught() -> None:
    exported = {"sms_worker_queue_messages": [{"queue": "main", "state": "visible"}]}
    assert _check("sms_worker_typo_total > 0", exported) == [
        "sms_worker_typo_total is not exported"
    ]
    assert _check('sms_worker_queue_messages{queue="dlq"} > 0', exported)
    assert not _check('sms_worker_queue_messages{queue="main"} > 0', exported)


def test_the_files_are_where_the_docs_say() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    manifests = Path(ROOT / "deploy" / "kubernetes").glob("*.yaml")
    for path in (ALERTS, DASHBOARD, *manifests):
        if path.name == "kustomization.yaml":
            continue  # `kubectl apply -k`
        assert path.name in deploy, f"docs/deploy.md does not mention {path.name}"
