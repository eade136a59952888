"""scripts/fleet_sim.py at a small N: every simulated station answers, and the report has its keys.

A benchmark, not a timing test: only the shape and the completeness are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loaxa.mqttclient import poll_select
from loaxa.testing.broker import have_mosquitto

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fleet_sim.py"


@pytest.mark.skipif(not have_mosquitto(), reason="mosquitto not installed")
def test_small_fleet_reports_every_receipt_as_json() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--stations",
            "24",
            "--per-process",
            "12",
            "--idle",
            "0.5",
            "--json",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["stations"] == 24 and report["processes"] == 2
    assert report["received"] == report["finished"] == 24 and report["complete"] is True
    for key in ("p50_received_s", "p99_received_s", "p50_finished_s", "p99_finished_s"):
        assert isinstance(report[key], float) and report[key] >= 0
    assert report["p50_received_s"] <= report["p99_received_s"] <= report["p99_finished_s"]
    assert report["peak_rss_mb"]["broker"] > 0 and report["peak_rss_mb"]["simulator"] > 0


def test_poll_select_answers_like_select_for_sockets_past_1023() -> None:
    """Hundreds of stations in one process put paho's sockets past select()'s 1024 limit."""
    import os
    import resource
    import select
    import socket

    from loaxa.province.simfleet import raise_fd_limit

    if (
        resource.getrlimit(resource.RLIMIT_NOFILE)[1] not in (resource.RLIM_INFINITY,)
        and resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2100
    ):
        pytest.skip("this machine allows fewer than 2100 open files")
    raise_fd_limit(2100)
    low, b = socket.socketpair()
    a = socket.socket(fileno=os.dup2(low.fileno(), 2000))
    low.close()
    try:
        with pytest.raises(ValueError):
            select.select([a], [], [], 0)
        assert poll_select([a], [], [], 0) == ([], [], [])
        b.send(b"x")
        readable, writable, _ = poll_select([a, b], [a], [], 1.0)
        assert readable == [a] and writable == [a]
        a.close()
        with pytest.raises(ValueError):
            poll_select([a], [], [], 0)
    finally:
        b.close()
