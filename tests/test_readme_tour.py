"""Slow: the README's five-minute tour runs verbatim, ``make demo`` included.

The repository is copied (modification times kept, the virtual environment linked, so ``make``
does not reinstall) and every ``bash`` and ``python`` block of the tour runs there in order.
``make demo`` simulates and refreshes (a minute or two), hence slow; the data guide's own block
runs in the fast suite (tests/test_own_data.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def _tour_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(bash|python)\n(.*?)```", section, re.S)


@pytest.mark.slow
def test_the_five_minute_tour_runs_verbatim(tmp_path):
    work = tmp_path / "repo"
    ignore = shutil.ignore_patterns(
        ".venv", "*.duckdb", "*.refresh.lock", "reports", ".git", "__pycache__"
    )
    shutil.copytree(ROOT, work, ignore=ignore, copy_function=shutil.copy2)
    (work / ".venv").symlink_to(ROOT / ".venv")
    env = {k: v for k, v in os.environ.items() if k != "CX_STORE"}
    blocks = _tour_blocks()
    assert [kind for kind, _ in blocks].count("bash") >= 2 and "python" in dict(blocks)
    for kind, body in blocks:
        if kind == "bash":
            for line in body.splitlines():
                command = line.split("  #", 1)[0].strip()
                if not command:
                    continue
                done = subprocess.run(
                    command, shell=True, cwd=work, env=env, capture_output=True, text=True,
                    timeout=1200,
                )  # fmt: skip
                assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
                assert "Warning" not in done.stdout, (command, done.stdout)
        else:
            done = subprocess.run(
                [sys.executable, "-c", body], cwd=work, env=env, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            assert done.returncode == 0, (body, done.stderr[-2000:])
