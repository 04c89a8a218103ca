"""The JSON Schema of scenario files, made from the same declaration the validator uses.

    python -m lab.scenario.schema > schema/scenario.schema.json

Editors that read JSON Schema (VS Code's YAML extension, for one) then complete keys,
show descriptions and flag mistakes while an instructor types:

    # yaml-language-server: $schema=../schema/scenario.schema.json
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict

from ..programs.shared import spec


def schema() -> Dict[str, Any]:
    out: Dict[str, Any] = {"$schema": "http://json-schema.org/draft-07/schema#",
                           "title": "socketlab scenario"}
    out.update(spec.SCENARIO.schema())
    return out


def text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    sys.stdout.write(text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
