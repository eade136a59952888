"""What the health check says about loops that live but cannot do their work.

Regressions: "QoS 0 flood wedges the receipts" (a reporter that cannot deliver
withholds the watchdog) and "disk full kills the inbox" (a full disk is
reported, not a reason to restart; a check that raises breaks nothing).
"""

from __future__ import annotations

import threading
import time

from loaxa.health import Health, Loop, thread_loop


class Worker(threading.Thread):
    def __init__(self, problem: str | None = None, fault: str | None = None) -> None:
        super().__init__(daemon=True)
        self.heartbeat = time.monotonic()
        self._problem, self._fault = problem, fault
        self.stop = threading.Event()

    def run(self) -> None:
        self.stop.wait(10)

    def problem(self) -> str | None:
        return self._problem

    def fault(self) -> str | None:
        return self._fault


def test_a_reporter_that_cannot_deliver_is_a_problem_and_a_full_disk_a_fault() -> None:
    reporter = Worker(problem="reporter cannot deliver: no event acknowledged for 130 s while connected (3 stall(s))")
    inbox = Worker(fault="inbox: storage full: 0 bytes free in /var/lib/loaxa; 2 command(s) not stored, 1 held")
    for t in (reporter, inbox):
        t.start()
    try:
        health = Health([thread_loop("reporter", reporter), thread_loop("inbox", inbox)], stall_s=60)
        assert health.problems() == [reporter.problem()]  # the watchdog is withheld for this one
        assert health.faults() == [inbox.fault()]  # a restart would not free the disk
        assert health.report() == [reporter.problem(), inbox.fault()]
    finally:
        for t in (reporter, inbox):
            t.stop.set()


def test_a_thread_that_died_anyway_is_reported_and_a_broken_check_breaks_nothing() -> None:
    dead = Worker()
    dead.start()
    dead.stop.set()
    dead.join(5)

    def broken() -> str | None:
        raise RuntimeError("bug")

    health = Health([thread_loop("inbox", dead), Loop("scheduler", lambda: True, None, problem=broken)], stall_s=60)
    assert health.problems() == ["inbox thread died", "scheduler: health check failed (RuntimeError)"]
