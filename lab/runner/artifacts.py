"""The per-run folder: resolved scenario, every host's output, results, captures."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path


class RunFolder:
    def __init__(self, runs_dir: Path, scenario_name: str):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(runs_dir) / f"{stamp}-{scenario_name}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = Path(f"{base}-{n}")
        path.mkdir(parents=True)
        self.path = path

    def write_json(self, name: str, data) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def write_bytes(self, name: str, data: bytes) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
