"""The README stays short and its commands real; every docs/ page is in the site; links resolve.

The strict MkDocs build (.ci/run, make docs) checks the links between the pages; these checks
cover what it cannot see: the README, which is not part of the site.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from pathlib import Path

import pytest
import yaml

from worker.cli import build_parser

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200


def _sh_commands(text: str) -> list[list[str]]:
    """The commands of the text's ``sh`` blocks, comments and a trailing ``&`` dropped."""
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip().removesuffix("&").strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug, the anchor MkDocs gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_the_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_readme_shows_the_two_commands_and_ci_runs_its_test_command() -> None:
    commands = [" ".join(c) for c in _sh_commands(README.read_text())]
    assert commands[:2] == ["make run", "make test"]
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert {"run", "test", "docs"} <= targets
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in ci
    assert any(line.startswith(".venv/bin/mkdocs build --strict") for line in ci)


def test_the_tours_sms_worker_commands_are_ones_it_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = [c for c in _sh_commands(README.read_text()) if c[0].endswith("sms-worker")]
    assert runs
    parser = build_parser()
    for command in runs:
        try:
            parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"sms-worker rejects {command[1:]}: {capsys.readouterr().err.strip()}")


def test_the_readmes_links_into_docs_resolve() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", README.read_text())
    assert links
    for path, anchor in links:
        page = ROOT / path
        assert page.is_file(), path
        if anchor:
            assert anchor in _anchors(page), f"{path}#{anchor}"


def test_every_page_is_in_the_strict_sites_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True
    nav = {page for entry in config["nav"] for page in entry.values()}
    assert nav == {p.name for p in DOCS.glob("*.md")}
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", README.read_text()))
    assert linked == nav - {"index.md"}, "the README's page list and the site's nav differ"
