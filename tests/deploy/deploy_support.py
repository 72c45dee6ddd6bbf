"""Shared helpers of the deployment-artefact tests (no network, no Docker)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from worker.settings import Settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
CAMPAIGN_CSV = ROOT / "deploy" / "compose" / "campaign.csv"
CFN_TEMPLATE = ROOT / "deploy" / "cloudformation" / "sms-worker.yaml"
K8S_DIR = ROOT / "deploy" / "kubernetes"

ENV_PREFIX = "SMS_WORKER_"


def settings_env_names() -> set[str]:
    """``SMS_WORKER_<FIELD>`` for every field of the worker's settings."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def shutdown_budget_s() -> float:
    """How long the worker may take after SIGTERM by default: grace plus hard deadline."""
    fields = Settings.model_fields
    return float(fields["shutdown_grace_s"].default) + float(fields["shutdown_hard_s"].default)


def metrics_port_default() -> int:
    return int(Settings.model_fields["metrics_port"].default)


def unknown_settings(env: Mapping[str, Any]) -> set[str]:
    """``SMS_WORKER_*`` names in ``env`` that are not settings (a typo is silently ignored)."""
    return {k for k in env if k.startswith(ENV_PREFIX)} - settings_env_names()


@contextmanager
def only_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with ``env`` as the only ``SMS_WORKER_*`` / ``AWS_*`` variables."""
    saved = {k: v for k, v in os.environ.items() if k.startswith((ENV_PREFIX, "AWS_"))}
    try:
        for key in saved:
            del os.environ[key]
        os.environ.update({k: str(v) for k, v in env.items()})
        yield
    finally:
        for key in [k for k in os.environ if k.startswith((ENV_PREFIX, "AWS_"))]:
            del os.environ[key]
        os.environ.update(saved)


def settings_from(env: Mapping[str, str]) -> Settings:
    """The worker's settings as ``sms-worker run`` would build them from ``env`` alone."""
    with only_environment(env):
        return Settings()  # type: ignore[call-arg]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The registered subcommands of ``sms-worker``'s parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def require_subcommand(parser: argparse.ArgumentParser, name: str) -> None:
    """Fail unless ``name`` is a subcommand of ``sms-worker``."""
    registered = subcommands(parser)
    if name in registered:
        return
    pytest.fail(f"`sms-worker {name}` is not a subcommand: {sorted(registered)}")


_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>us|ms|h|m|s)")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def compose_duration_s(text: str | int | float) -> float:
    """A compose duration (``40s``, ``1m30s``, ``500ms``) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match["value"]) * _UNIT_S[match["unit"]]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"not a compose duration: {text!r}")
    return total
