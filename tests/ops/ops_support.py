"""Helpers of the ops tests (a unique name, so it never clashes on sys.path)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from worker.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


async def cli(*args: str, env: Mapping[str, str] | None = None, timeout_s: float = 30) -> Run:
    """``python -m worker ARGS`` in a child process (the environment of the ``servers``
    fixture, which points the standard AWS_ENDPOINT_URL_* variables at the local servers)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env if env is not None else os.environ),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def _main(args: tuple[str, ...], env: Mapping[str, str] | None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Run(code, out.getvalue(), err.getvalue())


async def run_cli(*args: str, env: Mapping[str, str] | None = None) -> Run:
    """The same command line through ``worker.cli.main`` in this process (on a thread, since
    it runs its own event loop): the fast way for most cases."""
    return await asyncio.to_thread(_main, args, env)
