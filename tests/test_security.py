"""Signed commands: canonical form, signing, every rejection, key files, rate limit."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaxa.cli import main as cli_main
from loaxa.config import Issuer, SecuritySettings
from loaxa.errors import CommandError, ConfigError
from loaxa.security import (
    RateLimiter,
    Verifier,
    canonical_json,
    check_target,
    load_private_key,
    public_key_b64,
    save_private_key,
    sign,
)

NOW = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def verifier(require: bool = True, window_s: float = 600.0, **keys: Ed25519PrivateKey) -> Verifier:
    keys = keys or {"hn": KEY}
    issuers = tuple(Issuer(kid=kid, public_key=public_key_b64(key)) for kid, key in keys.items())
    return Verifier(SecuritySettings(require_signature=require, replay_window_s=window_s, issuers=issuers))


def bulletin(**extra: Any) -> dict[str, Any]:
    command = {"type": "bulletin", "id": "b-1", "text": "Thông báo mất điện", "issued": NOW.isoformat()}
    command.update(extra)
    return command


def over_the_wire(command: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(command))


# --- canonical JSON -------------------------------------------------------------


def test_canonical_json_sorts_keys_at_every_level_without_spaces() -> None:
    command = {"z": 1, "a": {"y": [1, 2], "b": None}, "m": True}
    assert canonical_json(command) == b'{"a":{"b":null,"y":[1,2]},"m":true,"z":1}'


def test_canonical_json_keeps_non_ascii_as_utf8() -> None:
    assert canonical_json({"text": "Hà Nội"}) == '{"text":"Hà Nội"}'.encode()
    assert b"\\u" not in canonical_json({"text": "Hà Nội"})


def test_canonical_json_leaves_out_sig_but_keeps_kid() -> None:
    assert canonical_json({"a": 1, "kid": "k", "sig": "xyz"}) == b'{"a":1,"kid":"k"}'


def test_canonical_json_refuses_values_json_cannot_carry() -> None:
    with pytest.raises(CommandError):
        canonical_json({"volume": float("nan")})
    with pytest.raises(CommandError):
        canonical_json(["not", "an", "object"])  # type: ignore[arg-type]


# --- sign and verify ------------------------------------------------------------------


def test_signed_command_verifies_and_names_its_issuer() -> None:
    command = bulletin()
    signed = sign(command, KEY, "hn")
    assert "sig" not in command and "kid" not in command  # the caller's dict is left alone
    assert signed["kid"] == "hn"
    assert len(base64.b64decode(signed["sig"])) == 64
    assert verifier().check(over_the_wire(signed), NOW) == "hn"


def test_known_vector_for_other_implementations() -> None:
    """The test vector published in docs/security.md."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    command = {
        "type": "bulletin",
        "id": "hn-2025-0412",
        "priority": "high",
        "text": "Bão số 3 đổ bộ chiều nay.",
        "issued": "2025-09-06T07:30:00+07:00",
    }
    signed = sign(command, key, "hn-2025")
    assert public_key_b64(key) == "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
    assert (
        canonical_json(signed)
        == (
            '{"id":"hn-2025-0412","issued":"2025-09-06T07:30:00+07:00","kid":"hn-2025",'
            '"priority":"high","text":"Bão số 3 đổ bộ chiều nay.","type":"bulletin"}'
        ).encode()
    )
    assert signed["sig"] == ("xf2pEZMil7HUlD/+n7SThTzHammE+iqGOGUshyZ0LqzBoppaag2w81th0oPBgLeQe16x6ko1TwwVaeUb6+I4Dg==")


def test_sign_can_stamp_issued() -> None:
    signed = sign({"type": "cancel", "id": "b-1"}, KEY, "hn", issued=NOW)
    assert signed["issued"] == "2025-06-01T08:00:00+00:00"
    assert verifier().check(signed, NOW) == "hn"


def test_resigning_replaces_an_old_signature() -> None:
    once = sign(bulletin(), OTHER_KEY, "old")
    assert verifier().check(sign(once, KEY, "hn"), NOW) == "hn"


def test_unsigned_command_rejected_when_signature_required() -> None:
    with pytest.raises(CommandError, match="unsigned"):
        verifier(require=True).check(bulletin(), NOW)


def test_unsigned_command_passes_when_signature_not_required() -> None:
    assert verifier(require=False).check(bulletin(), NOW) is None


def test_bad_signature_rejected_even_when_signature_not_required() -> None:
    signed = sign(bulletin(), KEY, "hn")
    signed["text"] = "Sơ tán ngay"
    with pytest.raises(CommandError, match="bad signature"):
        verifier(require=False).check(signed, NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [("text", "Thông báo mất nước"), ("priority", "emergency"), ("id", "b-2"), ("rev", 2), ("to", "hn")],
)
def test_tampered_field_breaks_signature(field: str, value: Any) -> None:
    signed = sign(bulletin(rev=1), KEY, "hn")
    signed[field] = value
    with pytest.raises(CommandError, match="bad signature"):
        verifier().check(signed, NOW)


def test_retargeted_command_breaks_signature() -> None:
    """Issue 17: `to` is signed, so a replay cannot be re-addressed by editing it."""
    signed = sign(bulletin(to="hn/xa-a/st-a"), KEY, "hn")
    assert verifier().check(signed, NOW) == "hn"
    for other in ("hn", "hn/xa-b/st-b", "hn/group/flood"):
        with pytest.raises(CommandError, match="bad signature"):
            verifier().check({**signed, "to": other}, NOW)
    with pytest.raises(CommandError, match="bad signature"):
        verifier().check({k: v for k, v in signed.items() if k != "to"}, NOW)


@pytest.mark.parametrize(
    ("to", "arrived", "signed", "reason"),
    [
        (None, "hn/xa-a/st-a", True, "signed command has no 'to'"),
        ("hn/xa-a/st-a", "hn", True, "'to' is 'hn/xa-a/st-a' but the command came on the topic of 'hn'"),
        ("hn/xa-a/st-a", "hn/xa-b/st-b", True, "came on the topic of 'hn/xa-b/st-b'"),
        ("hn/xa-a/st-a", "hn/xa-a", False, "came on the topic of 'hn/xa-a'"),
        ("hn", None, False, "did not come on a command topic"),
    ],
)
def test_a_command_for_another_target_is_rejected(
    to: str | None, arrived: str | None, signed: bool, reason: str
) -> None:
    """Issue 17 "a signed command can be replayed to the whole province"."""
    with pytest.raises(CommandError) as err:
        check_target(to, arrived, signed=signed)
    assert reason in str(err.value)


@pytest.mark.parametrize(
    ("to", "arrived", "signed"),
    [("hn/xa-a/st-a", "hn/xa-a/st-a", True), ("hn/group/flood", "hn/group/flood", True), (None, "hn", False)],
)
def test_a_command_for_its_own_target_passes(to: str | None, arrived: str, signed: bool) -> None:
    check_target(to, arrived, signed=signed)


def test_added_field_breaks_signature() -> None:
    signed = sign(bulletin(), KEY, "hn")
    signed["volume"] = 1.0
    with pytest.raises(CommandError, match="bad signature"):
        verifier().check(signed, NOW)


def test_signature_by_another_key_rejected() -> None:
    with pytest.raises(CommandError, match="bad signature"):
        verifier().check(sign(bulletin(), OTHER_KEY, "hn"), NOW)


def test_unknown_kid_rejected() -> None:
    with pytest.raises(CommandError, match="unknown key id 'qn'"):
        verifier().check(sign(bulletin(), KEY, "qn"), NOW)


@pytest.mark.parametrize("sig", ["not base64!", "AAAA", "", base64.b64encode(b"x" * 63).decode(), 12])
def test_malformed_signature_rejected(sig: Any) -> None:
    signed = sign(bulletin(), KEY, "hn")
    signed["sig"] = sig
    with pytest.raises(CommandError, match="malformed signature"):
        verifier(require=False).check(signed, NOW)


def test_half_a_signature_rejected() -> None:
    signed = sign(bulletin(), KEY, "hn")
    del signed["sig"]
    with pytest.raises(CommandError, match="'sig' is missing"):
        verifier(require=False).check(signed, NOW)


@pytest.mark.parametrize(
    ("issued", "reason"),
    [
        (None, "no 'issued'"),
        ("yesterday", "not an ISO 8601"),
        ("2025-06-01T08:00:00", "no UTC offset"),
        (17, "no 'issued'"),
    ],
)
def test_missing_or_invalid_issued_rejected(issued: Any, reason: str) -> None:
    command = bulletin()
    if issued is None:
        del command["issued"]
    else:
        command["issued"] = issued
    with pytest.raises(CommandError, match=reason):
        verifier().check(sign(command, KEY, "hn"), NOW)


@pytest.mark.parametrize("sign_of_offset", [-1, 1])
def test_replay_window_holds_on_both_sides(sign_of_offset: int) -> None:
    check = verifier(window_s=600.0).check
    inside = bulletin(issued=(NOW + sign_of_offset * timedelta(seconds=600)).isoformat())
    outside = bulletin(issued=(NOW + sign_of_offset * timedelta(seconds=601)).isoformat())
    assert check(sign(inside, KEY, "hn"), NOW) == "hn"
    with pytest.raises(CommandError, match="in the future" if sign_of_offset > 0 else "old"):
        check(sign(outside, KEY, "hn"), NOW)


@pytest.mark.parametrize("issued", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"])
def test_issued_at_the_ends_of_the_calendar_rejected(issued: str) -> None:
    with pytest.raises(CommandError, match="issued"):
        verifier().check(sign(bulletin(issued=issued), KEY, "hn"), NOW)


def test_issued_in_another_time_zone_compares_as_the_same_instant() -> None:
    hanoi = NOW.astimezone(datetime.fromisoformat("2025-01-01T00:00:00+07:00").tzinfo)
    assert verifier(window_s=1).check(sign(bulletin(issued=hanoi.isoformat()), KEY, "hn"), NOW) == "hn"
    assert verifier(window_s=1).check(sign(bulletin(issued="2025-06-01T08:00:00Z"), KEY, "hn"), NOW) == "hn"


@pytest.mark.parametrize("bad", ["not-base64!!", base64.b64encode(b"short").decode(), ""])
def test_malformed_issuer_key_in_config_names_the_kid(bad: str) -> None:
    settings_ = SecuritySettings(
        issuers=(Issuer(kid="hn", public_key=public_key_b64(KEY)), Issuer(kid="qn", public_key=bad))
    )
    with pytest.raises(ConfigError, match="'qn'"):
        Verifier(settings_)


def test_duplicate_issuer_kid_in_config_rejected() -> None:
    issuer = Issuer(kid="hn", public_key=public_key_b64(KEY))
    with pytest.raises(ConfigError, match="twice"):
        Verifier(SecuritySettings(issuers=(issuer, issuer)))


def test_two_issuers_each_verified_with_their_own_key() -> None:
    check = verifier(hn=KEY, qn=OTHER_KEY).check
    assert check(sign(bulletin(), KEY, "hn"), NOW) == "hn"
    assert check(sign(bulletin(), OTHER_KEY, "qn"), NOW) == "qn"
    with pytest.raises(CommandError, match="bad signature"):
        check(sign(bulletin(), OTHER_KEY, "hn"), NOW)


# --- property: any JSON-able command ---------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
commands = st.dictionaries(
    st.text(max_size=12).filter(lambda k: k not in {"kid", "sig", "issued"}), json_values, max_size=6
).map(lambda c: {**c, "issued": NOW.isoformat()})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_any_json_command_signs_and_verifies(command: dict[str, Any]) -> None:
    assert verifier().check(over_the_wire(sign(command, KEY, "hn")), NOW) == "hn"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands, st.data())
def test_any_single_field_change_breaks_the_signature(command: dict[str, Any], data: st.DataObject) -> None:
    signed = over_the_wire(sign(command, KEY, "hn"))
    field = data.draw(st.sampled_from(sorted(k for k in signed if k != "sig")))
    new_value = data.draw(
        json_values.filter(lambda v: canonical_json({"v": v}) != canonical_json({"v": signed[field]}))
    )
    signed[field] = new_value
    with pytest.raises(CommandError):
        verifier().check(signed, NOW)


junk = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=100), st.lists(st.integers(), max_size=3))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["kid", "sig", "issued", "id", "type"]), junk, max_size=5),
    st.sampled_from(["hn", None]),
    st.booleans(),
)
def test_any_junk_is_rejected_with_a_reason_never_a_crash(
    command: dict[str, Any], signer: str | None, require: bool
) -> None:
    if signer:  # a valid signature over junk, so the checks after it run too
        command = sign(command, KEY, signer)
    try:
        verifier(require=require).check(command, NOW)
    except CommandError as exc:
        assert str(exc)


# --- key files and the CLI ----------------------------------------------------------------


def test_key_file_round_trip_with_mode_0600(tmp_path) -> None:
    path = save_private_key(tmp_path / "issuer.key", KEY, "hn-2025")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key, kid = load_private_key(path)
    assert kid == "hn-2025"
    assert public_key_b64(key) == public_key_b64(KEY)


def test_key_file_not_overwritten_without_force(tmp_path) -> None:
    path = save_private_key(tmp_path / "issuer.key", KEY, "hn")
    with pytest.raises(ConfigError, match="already exists"):
        save_private_key(path, OTHER_KEY, "hn")
    assert public_key_b64(load_private_key(path).private_key) == public_key_b64(KEY)
    save_private_key(path, OTHER_KEY, "hn", force=True)
    assert public_key_b64(load_private_key(path).private_key) == public_key_b64(OTHER_KEY)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("kid: hn\n", "not a loaxa key file"),
        ("format: loaxa-ed25519-v1\nkid: hn\nprivate_key: AAAA\n", "private_key"),
        ("format: loaxa-ed25519-v1\nprivate_key: AAAA\n", "'kid'"),
        (": : :\n\t", "not valid YAML"),
    ],
)
def test_broken_key_file_gives_a_clear_error(tmp_path, text: str, reason: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(ConfigError, match=reason):
        load_private_key(path)


def test_key_file_with_mismatched_public_key_refused(tmp_path) -> None:
    path = save_private_key(tmp_path / "issuer.key", KEY, "hn")
    path.write_text(path.read_text().replace(public_key_b64(KEY), public_key_b64(OTHER_KEY)))
    with pytest.raises(ConfigError, match="does not match"):
        load_private_key(path)


def test_keys_generate_prints_a_snippet_a_station_accepts(tmp_path, capsys) -> None:
    import yaml

    out = tmp_path / "issuer.key"
    assert cli_main(["keys", "generate", "--out", str(out), "--kid", "2025"]) == 0
    snippet = yaml.safe_load(capsys.readouterr().out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    station = Verifier(SecuritySettings(**snippet["security"]))
    key, kid = load_private_key(out)
    assert kid == "2025"  # quoted in the snippet, so it stays a string
    assert station.check(sign(bulletin(), key, kid), NOW) == "2025"

    assert cli_main(["keys", "generate", "--out", str(out)]) == 1  # no overwrite
    assert cli_main(["keys", "show", str(out)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown == {"kid": "2025", "public_key": public_key_b64(key)}


# --- rate limiter --------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_the_steady_rate_per_issuer() -> None:
    limiter = RateLimiter(max_per_min=3)
    assert [limiter.allow("hn", 100.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("qn", 100.0)  # another issuer has its own bucket
    assert not limiter.allow("hn", 119.0)  # one token takes 20 s to come back
    assert limiter.allow("hn", 120.0)
    assert not limiter.allow("hn", 120.0)


def test_rate_limiter_refills_no_further_than_its_capacity() -> None:
    limiter = RateLimiter(max_per_min=2)
    assert limiter.allow("hn", 0.0)
    assert [limiter.allow("hn", 3600.0) for _ in range(3)] == [True, True, False]


def test_rate_limiter_does_not_mint_tokens_when_time_goes_back() -> None:
    limiter = RateLimiter(max_per_min=1)
    assert limiter.allow("hn", 1000.0)
    assert not limiter.allow("hn", 10.0)
    assert not limiter.allow("hn", 1000.0)
