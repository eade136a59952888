"""SHA-256 of a file, read in blocks so a 60 MB voice never sits in memory."""

from __future__ import annotations

import hashlib
import os

BLOCK_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The lower-case hex SHA-256 of the file's bytes; OSError if it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()
