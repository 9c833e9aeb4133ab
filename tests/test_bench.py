"""
The benchmark harnesses still run: tiny sizes, no timing asserted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.redis_server import require_redis


def smoke(*argv: str) -> subprocess.CompletedProcess[str]:
    """
    Run C{python -m <argv>} from the checkout; it must exit 0.
    """
    out = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def deliveries(pattern: str, table: str) -> int:
    row = re.search(pattern + r"([\d,]+) ", table, re.MULTILINE)
    assert row, table
    return int(row.group(1).replace(",", ""))


def test_bench_smoke() -> None:
    out = smoke("bench", "--smoke", "--engine", "python", "--scenarios", "fanout_1x100")
    assert deliveries(r"^\| chatroom \| ", out.stdout) > 0
    assert "acknowledged: ok" in out.stderr


def test_bench_dm_smoke() -> None:
    """
    Pairs of users exchange private messages: every one reaches its
    addressee, each sender gets its own copy, and all are on disk.
    """
    out = smoke("bench", "--smoke", "--engine", "python", "--scenarios", "dm_50")
    assert deliveries(r"^\| chatroom \| ", out.stdout) > 0
    assert re.search(
        r"private messages: \d+ lines on disk, >= \d+ received, 0 lost, "
        r"0 own copies missing, 0 misrouted: ok",
        out.stderr,
    ), out.stderr[-2000:]


@pytest.mark.skipif(shutil.which("cargo") is None, reason="the native engine needs cargo")
def test_bench_dm_smoke_native() -> None:
    """
    The same with the native engine, which C{python -m bench} uses by
    default.
    """
    out = smoke("bench", "--smoke", "--scenarios", "dm_50")
    assert deliveries(r"^\| chatroom \| ", out.stdout) > 0
    assert "0 misrouted: ok" in out.stderr, out.stderr[-2000:]


def test_cluster_bench_smoke() -> None:
    require_redis()
    out = smoke("bench.cluster", "--smoke", "--engine", "python", "--configs", "C")
    assert deliveries(r"^\| fanout_tiny \| C: [^|]+\| ", out.stdout) > 0
    assert re.search(r"history: \d+ entries added in Redis, >= \d+ acknowledged: ok", out.stderr)


def test_rooms_bench_smoke() -> None:
    out = smoke("bench.rooms", "--smoke")
    assert re.search(r"^\| with /rooms \| [\d.]+ ", out.stdout, re.MULTILINE), out.stdout
