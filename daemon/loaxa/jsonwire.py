"""JSON as loaxa writes it: compact for the wire and the store, canonical for signatures.

Both leave out insignificant white space and keep non-ASCII text as UTF-8
rather than `\\u` escapes (Vietnamese text stays readable and short).
`canonical` also sorts keys at every level and refuses NaN and infinities:
its bytes are what an issuer signs, so they must be the same everywhere.
"""

from __future__ import annotations

import json
from typing import Any

SEPARATORS = (",", ":")


def compact(obj: Any) -> str:
    """`obj` as JSON without spaces; key order as given."""
    return json.dumps(obj, ensure_ascii=False, separators=SEPARATORS)


def compact_bytes(obj: Any) -> bytes:
    """`compact(obj)` encoded as UTF-8, as an MQTT payload."""
    return compact(obj).encode("utf-8")


def canonical(obj: Any) -> bytes:
    """The canonical UTF-8 bytes of `obj`: sorted keys, no spaces, no NaN.

    Raises TypeError for a value JSON cannot carry, ValueError for NaN or
    infinity, UnicodeEncodeError for a lone surrogate in a string.
    """
    text = json.dumps(obj, sort_keys=True, separators=SEPARATORS, ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")
