"""Where a benchmark run leaves what it measured: one JSON file a run, in bench/results/."""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(results: Path, benchmark: str, figures: dict[str, Any]) -> Path:
    """Write one run of ``benchmark`` to ``results`` (created if need be) as
    ``<benchmark>-<UTC time>.json``: its name, when it ran and on which Python and platform,
    then its ``figures``. The file's path."""
    now = datetime.now(UTC)
    result = {
        "benchmark": benchmark,
        "at": now.isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **figures,
    }
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{benchmark}-{now:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out
