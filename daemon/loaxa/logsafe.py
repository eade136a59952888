"""Untrusted text made safe to log: one line, no control characters, bounded.

What arrives from the network (field names, values, ids, URLs, a remote
server's words) goes into the journal through `shown()`, never raw: a key
holding a newline must not write a forged line (`amplifier … on`, a fake
CRITICAL) under the station's name. Printable text, Vietnamese included,
is kept as it is; everything else is written as a Python escape (`\\n`,
`\\x1b`, `\\u2028`), and a long value is cut with a note of how much is left.
"""

from __future__ import annotations

LIMIT = 300  # characters of one value; a log line is read by a person


def shown(value: object, limit: int = LIMIT) -> str:
    """`value` as one printable line of at most about `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and len(text) <= limit:
        return text
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    if len(text) > limit:
        out += f"… ({len(text) - limit} more characters)"
    return out
