"""Years without a technician: the store stays bounded and keeps what it must.

The events outbox, `seen`, plays and bulletins grew for ever (`prune_events`
existed and was never called). Now the reporter prunes hourly by age
(`storage.keep_days`) and count (`storage.keep_events`); an unsent event, an
open play and an active bulletin are never pruned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loaxa.protocol import Bulletin, validate_command
from loaxa.store.identity import read_seen
from loaxa.testing.year import DAY_S, SimulatedStation


def test_a_simulated_season_keeps_the_store_bounded_and_spares_what_is_still_needed(tmp_path):
    sim = SimulatedStation(tmp_path, keep_days=10, keep_events=200)
    try:
        # an active scheduled bulletin and a receipt the broker never acknowledged, from day 0
        later = datetime.fromtimestamp(sim.now, UTC) + timedelta(days=400)
        kept = validate_command(
            {"type": "bulletin", "id": "weekly", "text": "Họp thôn.", "schedule": {"at": later.isoformat()}}
        )
        assert isinstance(kept, Bulletin)
        sim.ledger.accept("province", kept, datetime.fromtimestamp(sim.now, UTC), max_queue=1000, first_slot=later)
        unsent = [seq for seq, _ in sim.store.unsent_events()]
        sizes = []
        last = sim.run(days=40, per_day=5, every_day=lambda day: sizes.append(day.file_bytes))
        assert last.rows["plays"] <= 11 * 5 and last.rows["bulletins"] <= 11 * 5 + 1
        assert last.rows["seen"] == last.rows["bulletins"]
        assert last.rows["events"] <= 200 + len(unsent)
        assert max(sizes[20:]) <= 1.1 * max(sizes[:20])  # past the retention period the file stops growing
        assert [seq for seq, _ in sim.store.unsent_events()] == unsent
        assert [b.id for b in sim.ledger.scheduled_bulletins()] == ["weekly"]
        # the journal of seen ids beside the store (issue 17) is pruned with the table, not kept for ever
        journal = sorted(read_seen(sim.store.path))
        assert journal == sorted(tuple(r) for r in sim.store.query("SELECT issuer, id, rev, at FROM seen"))
        assert sim.now > 40 * DAY_S
    finally:
        sim.close()
