"""Pydantic errors as `key: message` lines, in the config's and the protocol's wording."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loaxa.validation import describe_error, error_key, error_message

PROTOCOL_WORDING: dict[str, Any] = {
    "top": "command",
    "bare_top": True,
    "missing": "missing field: {key}",
    "unknown": "unknown field: {key}",
}


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = Field(default=1, ge=1)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner = Inner()

    @model_validator(mode="after")
    def _not_both(self) -> Outer:
        if self.name == "bad":
            raise ValueError("name 'bad' is reserved")
        return self


def errors(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return list(info.value.errors())


def test_key_is_the_dotted_location_and_message_loses_pydantics_prefix() -> None:
    (err,) = errors({"name": "bad"})
    assert error_key(err) == "" and error_key(err, "(top level)") == "(top level)"
    assert error_message(err) == "name 'bad' is reserved"
    (err,) = errors({"name": "x", "inner": {"port": 0}})
    assert error_key(err) == "inner.port"


def test_config_wording() -> None:
    lines = [describe_error(e) for e in errors({"inner": {"port": 0, "prot": 2}})]
    assert lines == [
        "name: Field required",
        "inner.port: Input should be greater than or equal to 1",
        "inner.prot: unknown key",
    ]
    assert [describe_error(e) for e in errors({"name": "bad"})] == ["(top level): name 'bad' is reserved"]


def test_protocol_wording() -> None:
    # what protocol._describe writes for these errors today (tests/test_protocol.py, test_bad_input.py)
    lines = [describe_error(e, **PROTOCOL_WORDING) for e in errors({"inner": {"port": 0}, "colour": "red"})]
    assert lines == [
        "missing field: name",
        "inner.port: Input should be greater than or equal to 1",
        "unknown field: colour",
    ]
    assert [describe_error(e, **PROTOCOL_WORDING) for e in errors({"name": "bad"})] == ["name 'bad' is reserved"]
