"""Subcommands of sms-worker (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add this module's subcommands to ``sms-worker``'s subparsers."""
    _ = (commands, argparse)
