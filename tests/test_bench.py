"""
The benchmark harness still runs: tiny sizes, no timing asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT
from tests.redis_server import require_redis


def test_bench_smoke() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--engine",
            "python",
            "--scenarios",
            "fanout_1x100",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    row = re.search(r"^\| chatroom \| ([\d,]+) ", out.stdout, re.MULTILINE)
    assert row, out.stdout
    assert int(row.group(1).replace(",", "")) > 0
    assert "acknowledged: ok" in out.stderr


def test_cluster_bench_smoke() -> None:
    require_redis()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cluster",
            "--smoke",
            "--engine",
            "python",
            "--configs",
            "C",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    row = re.search(r"^\| fanout_tiny \| C: [^|]+\| ([\d,]+) ", out.stdout, re.MULTILINE)
    assert row, out.stdout
    assert int(row.group(1).replace(",", "")) > 0
    assert re.search(r"history: \d+ entries added in Redis, >= \d+ acknowledged: ok", out.stderr)
