"""Compact and canonical JSON: the bytes other programs and signatures depend on."""

from __future__ import annotations

import json

import pytest

from loaxa.jsonwire import canonical, compact, compact_bytes


def test_compact_has_no_spaces_keeps_key_order_and_vietnamese_text() -> None:
    obj = {"z": 1, "text": "Bão số 3", "a": [1, {"b": None}]}
    assert compact(obj) == '{"z":1,"text":"Bão số 3","a":[1,{"b":null}]}'
    assert compact_bytes(obj) == compact(obj).encode("utf-8")
    assert json.loads(compact_bytes(obj)) == obj


def test_canonical_sorts_keys_at_every_level() -> None:
    assert canonical({"z": 1, "a": {"y": [2, 1], "b": True}}) == b'{"a":{"b":true,"y":[2,1]},"z":1}'


def test_canonical_is_the_same_whatever_the_insertion_order() -> None:
    one = {"id": "b-1", "text": "Hà Nội", "schedule": {"at": "x", "every": 2}}
    other = {"schedule": {"every": 2, "at": "x"}, "text": "Hà Nội", "id": "b-1"}
    assert canonical(one) == canonical(other)
    assert b"\\u" not in canonical(one)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_canonical_refuses_numbers_json_cannot_carry(value: float) -> None:
    with pytest.raises(ValueError):
        canonical({"volume": value})


def test_canonical_refuses_a_lone_surrogate() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical({"text": "\ud800"})
