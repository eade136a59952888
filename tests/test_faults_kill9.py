"""kill -9 at random moments: nothing lost, nothing doubled, the store intact.

Each round sends an immediate and a scheduled bulletin, waits a random time
(often almost none: a kill just after a command arrives is the hard case),
kills the daemon with SIGKILL, checks SQLite's integrity and starts it again.
At the end every bulletin has exactly one `received` (or `scheduled`) and
one `finished`, and the event `seq` numbers arrive without a gap: a QoS 1
redelivery repeats a seq, a loss would leave one out. A command that was
stored but not yet acknowledged when the kill came is delivered again and
answered `duplicate`, never played twice.

`run_kill9` (loaxa.testing.soak) is shared with `scripts/soak.py kill9`, which runs many rounds.
"""

from __future__ import annotations

from loaxa.testing.soak import run_kill9


def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path):
    figures = run_kill9(tmp_path, rounds=5, seed=20260501)
    print(f"kill -9: {figures}")
    assert figures["kills"] == 5 and figures["integrity_ok"]
    assert figures["finished"] == figures["bulletins"] == 10
