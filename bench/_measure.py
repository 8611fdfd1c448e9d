"""Run one benchmark step in a fresh process and report its wall time and peak memory."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def step(module: str, *args: str, timeout: int = 3600, env: dict | None = None) -> dict:
    """Run ``python -m module args`` in a child process; it prints one JSON line on stdout.

    The child measures its own wall time and peak resident memory (ru_maxrss), so DuckDB's and
    NumPy's memory both count, and one step's memory does not leak into the next. ``env``
    adds to the environment (e.g. a fresh compiled-model cache).
    """
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_gib() -> float:
    """Peak resident memory of this process, in GiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine() -> dict:
    """What the numbers were measured on."""
    import duckdb

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "duckdb": duckdb.__version__,
    }


def write(name: str, payload: dict) -> Path:
    """Write a result file bench/results/NAME.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=str))
    return path
