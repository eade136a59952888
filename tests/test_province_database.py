"""The province database on real SQLite: duplicates, gaps, the registry's silence, the config's errors.

Issue 14 items 1 and 2 at the level of one ingest transaction; the tests
through the broker and the server process are in test_province_ingest.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loaxa.errors import ConfigError
from loaxa.province.server.database import Database, Incoming
from loaxa.province.server.registry import list_stations
from loaxa.province.server.settings import load_settings, parse_settings

STATION = "sim/c000/s00"


@pytest.fixture
def db(tmp_path: Path):
    d = Database.open(parse_settings({"province": {"id": "sim"}, "data_dir": str(tmp_path)}))
    yield d
    d.close()


def event(seq: int, name: str = "pong", station: str = STATION) -> Incoming:
    body = {"id": f"p{seq}", "rev": None, "event": name, "at": "2026-12-01T08:00:00.000+07:00", "station": station}
    return Incoming(station, "event", {**body, "seq": seq}, False, time.time())


def state(online: bool, at: str, retained: bool = False, **extra: object) -> Incoming:
    body = {
        "online": online,
        "version": "0.1.0",
        "at": at,
        "voice": {"engine": "piper", "name": "vi", "fallback": False},
    }
    return Incoming(STATION, "state", {**body, **extra}, retained, time.time())


def gaps(db: Database) -> list[tuple[str, int, int]]:
    with db.engine.connect() as conn:
        return [
            tuple(r) for r in conn.exec_driver_sql("SELECT station, first_seq, last_seq FROM gaps ORDER BY first_seq")
        ]


def seqs(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT seq FROM events ORDER BY seq")]


def test_a_redelivered_event_is_stored_once(db):
    """Item 1: QoS 1 redelivery (the same station and seq), in one batch and across batches."""
    first = db.ingest([event(1), event(2), event(2)])
    again = db.ingest([event(1), event(3)])
    assert (first.stored, first.duplicates, again.stored, again.duplicates) == (2, 1, 1, 1)
    assert seqs(db) == [1, 2, 3]


def test_a_station_whose_numbering_restarted_is_not_mistaken_for_a_redelivery(db):
    """Item 1: the same seq with another event (the station's store was replaced) is kept, not dropped."""
    db.ingest([event(1), event(2)])
    result = db.ingest([event(1, "received")])
    assert (result.stored, result.duplicates, result.renumbered) == (1, 0, 1)
    with db.engine.connect() as conn:
        kept = conn.exec_driver_sql("SELECT event, seq FROM events ORDER BY id").all()
    assert [tuple(r) for r in kept] == [("pong", 1), ("pong", 2), ("received", None)]


def test_a_jump_in_seq_is_recorded_as_a_gap_and_a_late_event_shrinks_it(db):
    """Item 1: events 3-5 never arrived: a gap; 4 arrives late: the gap is split around it."""
    result = db.ingest([event(1), event(2), event(6)])
    assert result.gaps == [(STATION, 3, 5)] and gaps(db) == [(STATION, 3, 5)]
    db.ingest([event(4)])
    assert gaps(db) == [(STATION, 3, 3), (STATION, 5, 5)]
    assert list_stations(db, 180)[0]["missing_events"] == 2


def test_registry_online_since_and_silent_after_the_threshold(db):
    """Item 2: online/offline since when; a station quiet longer than the threshold is silent."""
    db.ingest([state(True, "2026-12-01T08:00:00+07:00", clock_synced=True, groups=["coastal"])])
    db.ingest([state(True, "2026-12-01T08:01:00+07:00", clock_synced=True, groups=["coastal"])])
    (view,) = list_stations(db, 180)
    assert view["status"] == "online" and view["since"] == "2026-12-01T01:00:00+00:00"
    assert (view["voice"], view["voice_fallback"], view["groups"]) == ("piper:vi", False, ["coastal"])
    later = time.time() + 181
    assert list_stations(db, 180, now=later)[0]["status"] == "silent"
    db.ingest([state(False, "2026-12-01T08:05:00+07:00")])
    (view,) = list_stations(db, 180)
    assert view["status"] == "offline" and view["since"] == "2026-12-01T01:05:00+00:00"


def test_an_old_retained_state_redelivered_on_reconnect_does_not_make_a_dead_station_look_alive(db):
    """Item 2: last seen is when the retained state was made, not when the server got it again."""
    db.ingest([state(True, "2026-01-01T08:00:00+07:00", retained=True)])
    assert list_stations(db, 180)[0]["status"] == "silent"


def test_config_errors_name_every_key_at_once(tmp_path):
    path = tmp_path / "province.yaml"
    path.write_text("province: {id: Ha Noi}\nbrokr: {}\ndatabase: {url: mysql://x}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text = str(err.value)
    assert "province.id:" in text and "database.url:" in text and "brokr: unknown key (did you mean 'broker'?)" in text


def test_the_example_config_is_valid_and_documents_every_key():
    """Every key of the settings appears in config/province.example.yaml, and the file loads."""
    from loaxa.province.server.settings import ProvinceServerSettings

    example = Path(__file__).parent.parent / "config" / "province.example.yaml"
    settings = load_settings(example)
    assert settings.province.id == "demo-province"
    text = example.read_text(encoding="utf-8")

    def keys(model: type, prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            out.append(name)
            inner = field.annotation
            if isinstance(inner, type) and hasattr(inner, "model_fields") and name != "tls":
                out.extend(keys(inner))
        return out

    missing = [k for k in keys(ProvinceServerSettings) if f"{k}:" not in text]
    assert missing == []


def test_an_unreachable_database_is_one_readable_line_and_exit_code_1(tmp_path):
    """A start-up error names the database and why, without a traceback."""
    import subprocess
    import sys

    from loaxa.testing.broker import free_port

    path = tmp_path / "province.yaml"
    url = f"postgresql+psycopg://loaxa:secret@127.0.0.1:{free_port()}/loaxa"
    path.write_text(f"province: {{id: sim}}\ndatabase: {{url: '{url}'}}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "loaxa", "province", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot open or migrate the database postgresql+psycopg://loaxa:***@127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr and "secret" not in done.stderr


def test_the_migrations_make_exactly_the_tables_and_indexes_the_code_declares(db):
    """schema.py is what the code relies on, migrations/ what a database gets: a change to one alone is caught."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from loaxa.province.server import schema

    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []


def test_what_a_station_sends_in_the_wrong_shape_is_kept_out_of_the_registry_columns(db):
    """Groups that are not names, a boolean queue and a 100 kB detail: the columns the pages show stay sane."""
    db.ingest([state(True, "2026-12-01T08:00:00.000+07:00", groups=["ba-vi", 7, None, {"x": 1}, ""], queue=True)])
    huge = event(1, "failed")
    huge.body["detail"] = "x" * 100_000
    db.ingest([huge])
    station = list_stations(db, 180.0)[0]
    assert station["groups"] == ["ba-vi"] and station["queue"] is None
    with db.engine.connect() as conn:
        detail, payload = conn.exec_driver_sql("SELECT detail, payload FROM events").one()
    assert len(detail) == 2000 and len(payload) > 100_000  # the payload is the record, kept whole
