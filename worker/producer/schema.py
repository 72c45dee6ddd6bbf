"""The JSON Schema of a send-request body, as shipped in ``schema/send-request.schema.json``.

Regenerate the file after changing the model::

    python -m worker.producer.schema > schema/send-request.schema.json
    # or: sms-worker enqueue --print-schema > schema/send-request.schema.json
"""

from __future__ import annotations

import json
import sys

from worker.model import request_json_schema

SCHEMA_FILE = "schema/send-request.schema.json"


def schema_text() -> str:
    """The schema as the shipped file holds it: indented, keys in contract order, a newline."""
    return json.dumps(request_json_schema(), indent=2) + "\n"


def main() -> int:
    sys.stdout.write(schema_text())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
