"""The JSON Schema (draft 2020-12) of a send-request body, generated from the models.

A discriminated union on ``Channel``: one branch per registered channel (``oneOf``), each
the channel's model. The MMS branch takes a body without ``Channel`` (the default) or with
``"MMS"``; every other branch requires its own ``Channel`` value, so exactly one matches.
"""

from __future__ import annotations

import copy
from typing import Any

from worker.model.channels import CHANNELS

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


def channel_json_schema(name: str) -> dict[str, Any]:
    """One channel's branch: its model's keys, types, patterns, lengths and required keys."""
    generated = copy.deepcopy(CHANNELS[name].model.model_json_schema(mode="validation"))
    _drop_null_defaults(generated)
    return generated


def request_json_schema() -> dict[str, object]:
    """The body's schema: one branch per channel, chosen by ``Channel``; no other keys.

    White space is checked by the worker with Python's notion of it, which differs from the
    schema's ECMA-262 ``\\s`` only in a few control and format characters.
    """
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "SendRequest",
        "description": (
            'One SQS message body of sms-worker. Channel picks the API: absent or "MMS" '
            "is SendMediaMessage's parameters, \"SMS\" is SendTextMessage's; plus the "
            "envelope keys RequestId, CampaignId, NotAfter and Channel."
        ),
        "oneOf": [channel_json_schema(name) for name in CHANNELS],
    }
