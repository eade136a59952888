"""Pydantic's validation errors in words an operator reads: `key: message`.

pydantic reports each problem as a dict with a location, a type and a
message; the config file and the command protocol both turn those into
one line per problem, differing only in how they word a missing or an
unknown field and what they call the whole object.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

MISSING = "missing"
UNKNOWN = "extra_forbidden"


def error_key(err: Mapping[str, Any], top: str = "") -> str:
    """The dotted location of the error (`mqtt.port`, `issuers.0.kid`), or `top` for the whole object."""
    return ".".join(str(part) for part in err["loc"]) or top


def error_message(err: Mapping[str, Any]) -> str:
    """pydantic's message, without the "Value error, " it puts before a validator's own text."""
    return str(err["msg"]).removeprefix("Value error, ")


def describe_error(
    err: Mapping[str, Any],
    *,
    top: str = "(top level)",
    bare_top: bool = False,
    missing: str = "{key}: {message}",
    unknown: str = "{key}: unknown key",
) -> str:
    """One error as a line: `key: message`, or the `missing` / `unknown` wording.

    `top` names the whole object when the error has no location; with
    `bare_top` such an error is its message alone. `missing` and `unknown`
    are templates with `{key}` and `{message}`.
    """
    key = error_key(err, top)
    message = error_message(err)
    if err["type"] == MISSING:
        return missing.format(key=key, message=message)
    if err["type"] == UNKNOWN:
        return unknown.format(key=key, message=message)
    if bare_top and not err["loc"]:
        return message
    return f"{key}: {message}"


def describe_config_errors(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem of a configuration file; an unknown key gets a did-you-mean from `root`'s fields."""
    problems = []
    for err in exc.errors():
        line = describe_error(err)
        if err["type"] == UNKNOWN:
            line += _suggest(root, [str(part) for part in err["loc"]])
        problems.append(line)
    return problems


def _suggest(root: type[BaseModel], loc: list[str]) -> str:
    from pydantic import BaseModel

    model = root
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        inner = getattr(field, "annotation", None) if field else None
        inner = next(
            (a for a in getattr(inner, "__args__", (inner,)) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        if inner is None:
            return ""
        model = inner
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
