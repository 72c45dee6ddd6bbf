"""The JSON Schema (draft 2020-12) of a send-request body, generated from the model."""

from __future__ import annotations

import copy
from typing import Any

from worker.model.mms import SendRequest

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _drop_null_defaults(node: Any) -> None:
    """Optional keys have a ``None`` default in Python; in JSON, ``null`` is not allowed."""
    if isinstance(node, dict):
        if node.get("default", ...) is None:
            del node["default"]
        for child in node.values():
            _drop_null_defaults(child)
    elif isinstance(node, list):
        for child in node:
            _drop_null_defaults(child)


def request_json_schema() -> dict[str, object]:
    """The body's schema: keys, types, patterns, lengths, required keys, no other keys.

    White space is checked by the worker with Python's notion of it, which differs from the
    schema's ECMA-262 ``\\s`` only in a few control and format characters.
    """
    generated = copy.deepcopy(SendRequest.model_json_schema(mode="validation"))
    _drop_null_defaults(generated)
    return {"$schema": SCHEMA_DIALECT, **generated}
