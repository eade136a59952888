"""Regression: a full disk killed the inbox for good (fault "disk full kills the inbox").

With the store on a full file system, the first COMMIT failed, the error
receipt failed too, and the inbox thread died: the station stayed `online`
and answered nothing until a restart. Now the state reports the storage
fault and how many commands could not be stored, the command is held
unacknowledged and retried, and once space is freed it is received and
played, without a restart.

The store lives on a real 2 MB tmpfs, mounted for the test (root only).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loaxa.testing.broker import start_mosquitto
from loaxa.testing.disk import tmpfs
from loaxa.testing.station import Province, StationProcess, distinct_by_seq, station_config

TEXT = "Xin chào bà con."


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    with tmpfs(tmp_path / "var", "size=2m") as where:
        yield where


def fill(directory: Path) -> Path:
    """Write a file until the file system is full, to the last byte."""
    path = directory / "filler"
    with open(path, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                continue
    assert os.statvfs(directory).f_bavail == 0
    return path


def wait_state(
    province: Province, predicate: Callable[[dict[str, Any]], object], timeout_s: float, what: str, since: int = 0
) -> tuple[int, dict[str, Any]]:
    """The newest state after the first `since` for which `predicate` holds, and how many states came by then."""
    found: list[tuple[int, dict[str, Any]]] = []

    def seen() -> bool:
        states = province.states
        found[:] = [(i + 1, st) for i, st in enumerate(states) if i >= since and predicate(st)][-1:]
        return bool(found)

    province.wait(seen, timeout_s, what)
    return found[0]


def test_a_full_disk_is_reported_and_the_held_bulletin_plays_once_space_returns(tmp_path, tiny_disk):
    broker = start_mosquitto(tmp_path)
    province = Province(broker.host, broker.port, client_id="province-disk")
    root = tmp_path / "station"
    config = station_config(root, broker.port, f"wav:{tmp_path / 'aired'}", storage__dir=str(tiny_disk))
    station = StationProcess(root, config).start()
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 30, "online state")
        province.send({"type": "ping", "id": "before"})
        province.wait_for("before", "pong", 30)
        filler = fill(tiny_disk)

        province.send({"type": "bulletin", "id": "full-1", "text": TEXT, "chime": False})
        seen, faulted = wait_state(province, lambda st: (st.get("storage") or {}).get("fault"), 30, "a storage fault")
        assert faulted["online"]
        assert faulted["storage"]["fault"].startswith("storage full: ")
        assert f"bytes free in {tiny_disk}" in faulted["storage"]["fault"]
        assert faulted["storage"]["refused_commands"] >= 1
        assert province.of("full-1") == []  # not stored, so not received

        filler.unlink()  # the technician frees space; the station is not restarted
        province.wait_for("full-1", "finished", 90)
        assert province.of("full-1") == ["received", "started", "finished"]
        _, cleared = wait_state(province, lambda st: st["storage"]["fault"] is None, 30, "the fault cleared", seen)
        assert cleared["storage"]["refused_commands"] >= 1  # the count stays, for the record
        province.send({"type": "ping", "id": "after"})
        province.wait_for("after", "pong", 30)
        assert station.alive()
        assert station.control({"cmd": "status"})["health"] == []
        assert station.log().count("station hue/phu-vang/loa-1 up") == 1, "the daemon restarted"
    finally:
        code = station.stop()
        province.close()
        broker.stop()
    assert code == 0, station.log()


def test_issue17_item1_a_store_deleted_on_a_full_disk_holds_commands_until_it_can_be_written_again(tmp_path, tiny_disk):
    """The store deleted while the disk is full cannot be written again at once: commands are held, not lost."""
    broker = start_mosquitto(tmp_path)
    province = Province(broker.host, broker.port, client_id="province-disk-lost")
    root = tmp_path / "station"
    config = station_config(root, broker.port, f"wav:{tmp_path / 'aired'}", storage__dir=str(tiny_disk))
    station = StationProcess(root, config).start()
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 30, "online state")
        province.send({"type": "ping", "id": "before"})
        province.wait_for("before", "pong", 30)
        filler = fill(tiny_disk)
        for side in ("", "-wal", "-shm"):  # the daemon still holds them open: no space comes back
            (tiny_disk / f"station.db{side}").unlink()

        province.send({"type": "bulletin", "id": "held-1", "text": TEXT, "chime": False})
        seen, faulted = wait_state(
            province, lambda st: "was deleted while running" in (st["storage"]["fault"] or ""), 30, "the fault"
        )
        assert faulted["storage"]["fault"].startswith(
            f"the station store file {tiny_disk}/station.db was deleted while running, and cannot be made again: "
        )
        assert faulted["online"]
        faults = station.control({"cmd": "status"})["faults"]
        assert any(f.startswith("inbox: the station store file") and "held for retry" in f for f in faults), faults
        assert province.of("held-1") == []  # not stored, not acknowledged: held

        filler.unlink()
        province.wait_for("held-1", "finished", 90)
        [incident] = [e for e in province.events if e["id"] is None and e["event"] == "failed"]
        assert incident["detail"] == (
            "storage: the store file was deleted while running; it was written again from the open copy, "
            "nothing was lost"
        )
        assert province.of("held-1") == ["received", "started", "finished"]
        seqs = [e["seq"] for e in distinct_by_seq(province.events)]
        assert seqs == list(range(1, len(seqs) + 1)), "an event was lost"
        assert incident["seq"] < seqs[-3], "the incident is told before the held command is received"
        _, cleared = wait_state(province, lambda st: st["storage"]["fault"] is None, 30, "the fault cleared", seen)
        assert cleared["storage"]["incident"]["history_lost"] is False
        assert station.log().count("station hue/phu-vang/loa-1 up") == 1, "the daemon restarted"
    finally:
        code = station.stop()
        province.close()
        broker.stop()
    assert code == 0, station.log()
