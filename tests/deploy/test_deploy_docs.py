"""docs/deploy.md: the commands it shows work with the files they name."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import CFN_TEMPLATE, K8S_DIR, ROOT, require_subcommand

from worker.cli import build_parser

DEPLOY_PAGE = ROOT / "docs" / "deploy.md"


@pytest.fixture(scope="module")
def text() -> str:
    return DEPLOY_PAGE.read_text()


def _commands(text: str) -> list[list[str]]:
    """The shell commands of the snippet's ``sh`` blocks, continuation lines joined."""
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def _cfn_parameters() -> dict[str, Any]:
    cfnlint_decode = pytest.importorskip("cfnlint.decode", reason="needs cfn-lint")
    template, problems = cfnlint_decode.decode(Path(CFN_TEMPLATE))
    assert not problems
    return dict(template["Parameters"])


def test_it_is_the_deploy_page(text: str) -> None:
    assert text.startswith("# Deploy\n")


def test_every_path_it_names_exists(text: str) -> None:
    paths = set(re.findall(r"(?:deploy|tests)/[\w./-]+\w", text))
    paths |= {p for p in ("Dockerfile", "docker-compose.yml", "constraints.txt") if p in text}
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), path


def test_compose_scales_the_worker(text: str) -> None:
    ups = [c for c in _commands(text) if c[:3] == ["docker", "compose", "up"]]
    assert ups
    assert any("--scale" in c and c[c.index("--scale") + 1] == "worker=3" for c in ups)


def test_compose_runs_are_commands_sms_worker_accepts(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [c for c in _commands(text) if c[:3] == ["docker", "compose", "run"]]
    assert runs
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    parser = build_parser()
    for command in runs:
        words = command[3:]
        while words[0].startswith("--"):
            words = words[1:]
        service, argv = words[0], words[1:]
        assert service in compose["services"], service
        require_subcommand(parser, argv[0])
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"sms-worker rejects {argv}: {capsys.readouterr().err.strip()}")


def test_sms_worker_commands_are_ones_it_accepts(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [c for c in _commands(text) if c[0] == "sms-worker"]
    assert runs
    parser = build_parser()
    for command in runs:
        require_subcommand(parser, command[1])
        try:
            parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"sms-worker rejects {command[1:]}: {capsys.readouterr().err.strip()}")


def test_cloudformation_deploys_name_real_parameters_and_give_the_required_ones(
    text: str,
) -> None:
    parameters = _cfn_parameters()
    required = {name for name, p in parameters.items() if "Default" not in p}
    deploys = [c for c in _commands(text) if c[:3] == ["aws", "cloudformation", "deploy"]]
    assert deploys
    for command in deploys:
        assert command[command.index("--template-file") + 1] == str(CFN_TEMPLATE.relative_to(ROOT))
        assert "CAPABILITY_IAM" in command[command.index("--capabilities") + 1 :]
        start = command.index("--parameter-overrides") + 1
        given = dict(word.split("=", 1) for word in command[start:] if "=" in word)
        assert set(given) <= set(parameters), set(given) - set(parameters)
        assert required <= set(given), required - set(given)
        for name, value in given.items():
            parameter = parameters[name]
            values = value.split(",") if parameter["Type"] == "CommaDelimitedList" else [value]
            if "AllowedPattern" in parameter:
                for item in values:
                    assert re.fullmatch(parameter["AllowedPattern"], item), (name, item)
            if "AllowedValues" in parameter:
                assert value in [str(v) for v in parameter["AllowedValues"]], (name, value)


def test_no_named_iam_so_capability_iam_is_enough() -> None:
    cfnlint_decode = pytest.importorskip("cfnlint.decode", reason="needs cfn-lint")
    template, _ = cfnlint_decode.decode(Path(CFN_TEMPLATE))
    for name, resource in template["Resources"].items():
        if resource["Type"].startswith("AWS::IAM::"):
            properties = resource.get("Properties", {})
            assert not {"RoleName", "ManagedPolicyName", "UserName", "GroupName"} & set(
                properties
            ), f"{name} has a custom name: the deploy command would need CAPABILITY_NAMED_IAM"


def test_kubectl_applies_in_the_kustomization_order(text: str) -> None:
    applied = [
        Path(c[c.index("-f") + 1]).name
        for c in _commands(text)
        if c[:2] == ["kubectl", "apply"] and "-f" in c
    ]
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert applied == kustomization["resources"]
