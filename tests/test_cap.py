"""CAP 1.2 alerts become protocol commands that a station accepts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaxa.errors import LoaxaError
from loaxa.protocol import MAX_PAYLOAD, Bulletin, Cancel, validate_command
from loaxa.province.cap import (
    MAX_DOCUMENT_BYTES,
    CapAlert,
    CapError,
    CapNotLive,
    bulletin_id,
    cap_to_commands,
    parse_cap,
    priority_for,
)
from loaxa.province.cap_text import MAX_TEXT_CHARS, assemble, sentences

DATA = Path(__file__).parent / "data" / "cap"
ICT = timezone(timedelta(hours=7))
# Five minutes after the storm alert was sent; before every sample expires.
NOW = datetime(2025, 9, 14, 8, 5, tzinfo=ICT)
SAMPLES = sorted(p.name for p in DATA.glob("*.xml"))
VALID = [
    "storm_alert.xml",
    "storm_update.xml",
    "storm_cancel.xml",
    "flood_alert.xml",
    "epidemic_notice.xml",
    "bilingual_alert.xml",
]


def load(name: str) -> CapAlert:
    return parse_cap((DATA / name).read_bytes())


def commands(name: str, now: datetime | None = None) -> list[dict]:
    """Commands for a sample, by default five minutes after it was sent."""
    alert = load(name)
    return cap_to_commands(alert, now or alert.sent + timedelta(minutes=5))


def doc(
    *,
    status: str = "Actual",
    msg_type: str = "Alert",
    sent: str = "2025-09-14T08:00:00+07:00",
    references: str | None = None,
    info: str | None = None,
    language: str = "vi-VN",
    urgency: str = "Expected",
    severity: str = "Severe",
    extra_info: str = "",
    identifier: str = "T-1",
) -> bytes:
    """A minimal CAP 1.2 alert; `info` replaces the whole <info> block."""
    refs = f"<references>{references}</references>" if references else ""
    if info is None:
        info = f"""<info><language>{language}</language><category>Met</category>
          <event>Mưa lớn</event><urgency>{urgency}</urgency><severity>{severity}</severity>
          <certainty>Likely</certainty>{extra_info}
          <headline>Cảnh báo mưa lớn</headline></info>"""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>pctt@tinh.example.vn</sender>
  <sent>{sent}</sent><status>{status}</status><msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}{info}
</alert>""".encode()


def accepted(command: dict) -> Bulletin | Cancel:
    """The station's own parser accepts the command, as the publisher sends it."""
    payload = json.dumps(command, ensure_ascii=False).encode()
    assert len(payload) <= MAX_PAYLOAD
    parsed = validate_command(json.loads(payload))
    assert isinstance(parsed, (Bulletin, Cancel))
    return parsed


# ------------------------------------------------------------------ parsing


def test_storm_alert_parses_every_field_the_mapping_uses():
    alert = load("storm_alert.xml")
    assert (alert.identifier, alert.sender) == ("BCH-PCTT-2025-0914-001", "bchpctt@tinh.example.vn")
    assert alert.sent == datetime(2025, 9, 14, 8, 0, tzinfo=ICT)
    assert (alert.status, alert.msg_type, alert.scope) == ("Actual", "Alert", "Public")
    assert alert.references == ()
    [info] = alert.infos
    assert info.language == "vi-VN"
    assert info.categories == ("Met",)
    assert (info.event, info.urgency, info.severity, info.certainty) == ("Bão", "Expected", "Extreme", "Likely")
    assert info.onset == datetime(2025, 9, 15, 10, 0, tzinfo=ICT)
    assert info.expires == datetime(2025, 9, 16, 18, 0, tzinfo=ICT)
    assert info.sender_name == "Ban Chỉ huy Phòng chống thiên tai và Tìm kiếm cứu nạn tỉnh"
    assert info.headline.startswith("Tin bão khẩn cấp: Bão số 3")
    assert "cấp 12, giật cấp 15" in info.description
    assert info.instruction.startswith("- Tàu thuyền không ra khơi")
    assert info.areas == ("Huyện Vân Đồn", "Huyện Cô Tô", "Thị xã Quảng Yên")


def test_references_are_parsed_in_order_with_their_times():
    alert = load("storm_cancel.xml")
    assert alert.msg_type == "Cancel"
    assert [(r.identifier, r.sent.hour) for r in alert.references] == [
        ("BCH-PCTT-2025-0914-002", 14),
        ("BCH-PCTT-2025-0914-001", 8),
    ]
    assert alert.infos == ()


def test_info_language_defaults_to_en_us_and_utc_minus_zero_is_accepted():
    alert = load("no_vietnamese.xml")
    assert alert.infos[0].language == "en-US"
    assert alert.sent.utcoffset() == timedelta(0)


def test_bilingual_alert_keeps_both_blocks():
    assert [i.language for i in load("bilingual_alert.xml").infos] == ["en-US", "vi-VN"]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        ((DATA / "malformed.xml").read_bytes(), "not well-formed"),
        (b"<html><body>503</body></html>", "root element is <html>"),
        (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1"/>', "expected CAP 1.2"),
        (b"<alert/>", "namespace '(none)'"),
        (doc().replace(b"<identifier>T-1</identifier>", b""), "no <identifier>"),
        (doc(status="Real"), "<status> is 'Real'"),
        (doc(msg_type="Notice"), "<msgType> is 'Notice'"),
        (doc(sent="14/09/2025 08:00"), "<sent> '14/09/2025 08:00' is not a date-time"),
        (doc(sent="2025-09-14T08:00:00"), "has no time zone offset"),
        (doc(urgency="Soon"), "<urgency> is 'Soon'"),
        (doc(severity=""), "no <severity>"),
        (doc(msg_type="Update", references="pctt@tinh.example.vn,T-0"), "not sender,identifier,sent"),
        (doc(info="<info><event>x</event></info>"), "no <category>"),
        ("<alert>".encode("utf-16"), "not well-formed"),
    ],
)
def test_malformed_or_non_cap_input_raises_cap_error_with_reason(data, reason):
    with pytest.raises(CapError, match=None) as caught:
        parse_cap(data)
    assert reason in str(caught.value)
    assert isinstance(caught.value, LoaxaError)


def test_size_cap_refuses_big_documents_before_parsing():
    big = doc(extra_info="<note>" + "x" * MAX_DOCUMENT_BYTES + "</note>")
    with pytest.raises(CapError, match="the limit is 1048576"):
        parse_cap(big)


def test_deep_nesting_inside_a_field_neither_crashes_nor_recurses():
    nested = "<b>" * 100_000 + "Sơ tán" + "</b>" * 100_000
    alert = parse_cap(doc(extra_info=f"<description>{nested}</description>"))
    assert alert.infos[0].description == "Sơ tán"


def test_text_is_refused_it_must_be_bytes():
    with pytest.raises(CapError, match="must be bytes"):
        parse_cap(doc().decode())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["entity_attack.xml", "external_entity.xml"])
def test_doctype_and_entities_are_refused(name):
    with pytest.raises(CapError, match="DOCTYPE or entity declaration; refused"):
        load(name)


def test_entity_attack_is_refused_in_any_encoding():
    # A byte search for "<!DOCTYPE" would miss this; the parser hook does not.
    attack = (DATA / "entity_attack.xml").read_text(encoding="utf-8")
    data = attack.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    with pytest.raises(CapError, match="refused"):
        parse_cap(data)


# ------------------------------------------------------------------ priority

# The table of docs/cap.md: rows urgency, columns severity.
SEVERITY_COLUMNS = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
PRIORITY_TABLE = {
    "Immediate": ("emergency", "emergency", "emergency", "emergency", "emergency"),
    "Expected": ("emergency", "emergency", "high", "high", "high"),
    "Future": ("emergency", "emergency", "high", "normal", "normal"),
    "Unknown": ("emergency", "emergency", "high", "normal", "low"),
    "Past": ("low", "low", "low", "low", "low"),
}


@pytest.mark.parametrize(
    "urgency, severity, expected",
    [(u, s, row[i]) for u, row in PRIORITY_TABLE.items() for i, s in enumerate(SEVERITY_COLUMNS)],
)
def test_priority_table(urgency, severity, expected):
    assert priority_for(urgency, severity) == expected
    [command] = cap_to_commands(parse_cap(doc(urgency=urgency, severity=severity)), NOW)
    assert command["priority"] == expected


def test_documented_table_is_the_one_tested():
    lines = (Path(__file__).parents[1] / "docs" / "cap.md").read_text(encoding="utf-8").splitlines()
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in PRIORITY_TABLE and len(cells) == 6:
            rows[cells[0]] = tuple(cells[1:])
    assert rows == PRIORITY_TABLE


def test_sample_priorities():
    assert commands("storm_alert.xml")[0]["priority"] == "emergency"
    assert commands("flood_alert.xml")[0]["priority"] == "high"
    assert commands("epidemic_notice.xml")[0]["priority"] == "normal"


# ------------------------------------------------------------------ id and rev


def test_update_supersedes_the_alert_same_id_higher_rev():
    [alert] = commands("storm_alert.xml")
    [update] = commands("storm_update.xml")
    assert update["type"] == alert["type"] == "bulletin"
    assert update["id"] == alert["id"]
    assert update["rev"] > alert["rev"] >= 1
    assert update["text"].startswith("Tin cập nhật. Bão số 3 đã mạnh lên cấp 13")


def test_id_is_stable_and_within_protocol_limits():
    [first] = commands("storm_alert.xml")
    [again] = commands("storm_alert.xml")
    assert first["id"] == again["id"] == bulletin_id("bchpctt@tinh.example.vn", "BCH-PCTT-2025-0914-001")
    assert first["id"].startswith("cap-") and len(first["id"]) == 20
    other = bulletin_id("bchpctt@tinh.example.vn", "BCH-PCTT-2025-0914-002")
    assert other != first["id"]


def test_different_senders_with_the_same_identifier_do_not_collide():
    assert bulletin_id("a@example.vn", "1") != bulletin_id("b@example.vn", "1")


def test_rev_follows_sent_one_second_apart():
    early = cap_to_commands(parse_cap(doc(sent="2025-09-14T08:00:00+07:00")), NOW)[0]["rev"]
    late = cap_to_commands(parse_cap(doc(sent="2025-09-14T01:00:01+00:00")), NOW)[0]["rev"]
    assert late == early + 1
    assert late < 2**31


def test_cancel_cancels_the_original_bulletin_whatever_the_order_of_references():
    [alert] = commands("storm_alert.xml")
    [cancel] = commands("storm_cancel.xml")
    assert cancel == {"type": "cancel", "id": alert["id"], "issued": "2025-09-16T09:00:00+07:00"}
    refs = "pctt@tinh.example.vn,T-1,2025-09-14T08:00:00+07:00 pctt@tinh.example.vn,T-2,2025-09-14T09:00:00+07:00"
    later = doc(msg_type="Cancel", references=refs, sent="2025-09-14T10:00:00+07:00", info="")
    assert cap_to_commands(parse_cap(later), NOW)[0]["id"] == bulletin_id("pctt@tinh.example.vn", "T-1")


def test_update_without_references_is_an_error():
    with pytest.raises(CapError, match="Update has no <references>"):
        cap_to_commands(parse_cap(doc(msg_type="Update")), NOW)


def test_update_not_later_than_its_alert_is_an_error_it_could_not_supersede():
    refs = "pctt@tinh.example.vn,T-0,2025-09-14T08:00:00+07:00"
    update = parse_cap(doc(msg_type="Update", references=refs, sent="2025-09-14T08:00:00+07:00"))
    with pytest.raises(CapError, match="not later than the alert it updates"):
        cap_to_commands(update, NOW)


# ------------------------------------------------------------------ not live


@pytest.mark.parametrize("status", ["Test", "Exercise", "Draft"])
@pytest.mark.parametrize("msg_type", ["Alert", "Update", "Cancel"])
def test_test_exercise_and_draft_never_produce_a_command(status, msg_type):
    refs = "pctt@tinh.example.vn,T-0,2025-09-14T07:00:00+07:00"
    alert = parse_cap(doc(status=status, msg_type=msg_type, references=refs))
    with pytest.raises(CapNotLive, match=f"status is {status}: never aired live"):
        cap_to_commands(alert, NOW)


def test_test_sample_is_not_live():
    with pytest.raises(CapNotLive):
        commands("test_alert.xml")


@pytest.mark.parametrize("status, msg_type", [("System", "Alert"), ("Actual", "Ack"), ("Actual", "Error")])
def test_system_ack_and_error_produce_nothing(status, msg_type):
    assert cap_to_commands(parse_cap(doc(status=status, msg_type=msg_type)), NOW) == []


def test_expired_alert_is_not_live():
    alert = load("flood_alert.xml")
    with pytest.raises(CapNotLive, match="expired at 2025-10-23T16:30:00\\+07:00"):
        cap_to_commands(alert, datetime(2025, 10, 23, 16, 30, tzinfo=ICT))


def test_restricted_and_private_scope_are_still_mapped():
    for scope in ("Restricted", "Private"):
        alert = parse_cap(doc().replace(b"<scope>Public</scope>", f"<scope>{scope}</scope>".encode()))
        assert cap_to_commands(alert, NOW)[0]["type"] == "bulletin"


def test_naive_now_is_a_caller_bug():
    with pytest.raises(ValueError, match="timezone-aware"):
        cap_to_commands(load("storm_alert.xml"), datetime(2025, 9, 14, 8, 5))


# ------------------------------------------------------------------ language


def test_no_vietnamese_block_is_an_error_naming_the_blocks_present():
    with pytest.raises(CapError, match=r"no Vietnamese <info> block .*blocks present: en-US"):
        commands("no_vietnamese.xml")


def test_bilingual_alert_reads_the_vietnamese_block():
    [command] = commands("bilingual_alert.xml")
    assert command["text"].startswith("Sạt lở đất trên tỉnh lộ 14. Khu vực: Xã Trà Leng.")
    assert "Landslide" not in command["text"]


@pytest.mark.parametrize("language", ["vi", "vi-VN", "VI-vn", "vi_VN"])
def test_vietnamese_block_is_matched_case_insensitively(language):
    assert cap_to_commands(parse_cap(doc(language=language)), NOW)[0]["text"] == "Cảnh báo mưa lớn."


def test_other_language_can_be_asked_for():
    [command] = cap_to_commands(load("bilingual_alert.xml"), NOW, language="en")
    assert command["text"].startswith("Landslide on provincial road 14.")


# ------------------------------------------------------------------ time


def test_as_soon_as_possible_when_in_effect_even_if_onset_is_in_the_future():
    # Storm onset is tomorrow: the warning must be heard before it, not at it.
    [command] = commands("storm_alert.xml")
    assert "schedule" not in command
    assert command["issued"] == "2025-09-14T08:00:00+07:00"
    assert command["expires"] == "2025-09-16T18:00:00+07:00"


def test_effective_in_the_future_schedules_at_effective():
    [command] = commands("epidemic_notice.xml", datetime(2025, 8, 12, 15, 1, tzinfo=ICT))
    assert command["schedule"] == {"at": "2025-08-13T06:30:00+07:00"}
    [later] = commands("epidemic_notice.xml", datetime(2025, 8, 13, 7, 0, tzinfo=ICT))
    assert "schedule" not in later


def test_expires_before_effective_is_an_error():
    extra = "<effective>2025-09-15T08:00:00+07:00</effective><expires>2025-09-15T07:00:00+07:00</expires>"
    with pytest.raises(CapError, match="not after <effective>"):
        cap_to_commands(parse_cap(doc(extra_info=extra)), NOW)


# ------------------------------------------------------------------ text


def test_text_is_announcer_ready_sentences():
    text = commands("flood_alert.xml")[0]["text"]
    assert text.startswith(
        "Cảnh báo lũ trên sông Thu Bồn, cấp độ rủi ro thiên tai cấp 2. Khu vực: Xã Duy Phước, Xã Duy Vinh. "
    )
    assert "dưới báo động 3 là 0,2 mét. Các vùng trũng" in text  # ";" at a line end became "."
    assert "•" not in text and "\n" not in text
    assert text.endswith("không cho trẻ em tắm sông, chơi gần khu vực nước chảy xiết.")


def test_each_part_ends_with_a_full_stop_and_keeps_its_own_punctuation():
    assert sentences("- Sơ tán ngay\n\n* Đến nơi cao!\n1. Gọi 112?") == ["Sơ tán ngay.", "Đến nơi cao!", "Gọi 112?"]
    assert assemble("Tin khẩn", ["Xã A", "Xã A", "Xã B"], None, "Ở trong nhà") == (
        "Tin khẩn. Khu vực: Xã A, Xã B. Ở trong nhà."
    )


def test_headline_falls_back_to_event():
    info = (
        "<info><language>vi</language><category>Fire</category><event>Cháy rừng</event>"
        "<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty></info>"
    )
    assert cap_to_commands(parse_cap(doc(info=info)), NOW)[0]["text"] == "Cháy rừng."


def test_long_description_is_shortened_keeping_the_instruction():
    description = "\n".join(f"Câu mô tả số {i} về diễn biến mưa lũ trên địa bàn." for i in range(2000))
    extra = f"<description>{description}</description><instruction>Sơ tán ngay đến nơi cao.</instruction>"
    [command] = cap_to_commands(parse_cap(doc(extra_info=extra)), NOW)
    text = command["text"]
    assert len(description) > MAX_TEXT_CHARS >= len(text) > MAX_TEXT_CHARS - 100
    assert text.startswith("Cảnh báo mưa lớn. Câu mô tả số 0 ")
    assert text.endswith("địa bàn. Sơ tán ngay đến nơi cao.")
    accepted(command)


def test_one_huge_sentence_is_cut_at_a_word_and_still_ends_with_a_full_stop():
    text = assemble("Tin", [], None, "lũ " * 15_000)
    assert len(text) <= MAX_TEXT_CHARS and text.endswith("lũ.")


def test_worst_case_vietnamese_text_still_fits_one_payload():
    command = cap_to_commands(parse_cap(doc(extra_info="<description>" + "ệ" * 30_000 + "</description>")), NOW)[0]
    assert len(command["text"]) <= MAX_TEXT_CHARS
    accepted(command)


# ------------------------------------------------------------------ contract


@pytest.mark.parametrize("name", VALID)
def test_every_sample_command_is_accepted_by_the_station_parser(name):
    for command in commands(name):
        parsed = accepted(command)
        assert parsed.id == command["id"]


def test_every_sample_is_covered():
    assert set(SAMPLES) == set(VALID) | {
        "test_alert.xml",
        "no_vietnamese.xml",
        "malformed.xml",
        "entity_attack.xml",
        "external_entity.xml",
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_cap_error(data):
    try:
        alert = parse_cap(data)
    except CapError:
        return
    try:
        cap_to_commands(alert, NOW)
    except CapError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 40), st.binary(max_size=8)), max_size=4),
)
def test_mutated_samples_raise_only_cap_error_and_map_to_valid_commands(name, edits):
    data = bytearray((DATA / name).read_bytes())
    for at, length, replacement in edits:
        at %= len(data) + 1
        data[at : at + length] = replacement
    try:
        alert = parse_cap(bytes(data))
        produced = cap_to_commands(alert, NOW)
    except CapError:
        return
    for command in produced:
        accepted(command)
