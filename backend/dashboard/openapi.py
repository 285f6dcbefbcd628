"""Print Parley's OpenAPI schema as JSON, from create_app() alone (no server, no database).

`make web-api` feeds it to openapi-typescript, which writes the dashboard's typed API client.
"""

from __future__ import annotations

import json
import sys

from backend.main import create_app


def schema_json() -> str:
    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_json())
