"""The station's memory: bulletins, what was seen, plays to make, events to send.

`db` holds the SQLite file and the events outbox; `ledger` (with the steps
of `txn`) is the one owner of bulletin and play state and the receipts each
change causes; `records` are what the store holds, as types; `schema` the
tables. `opening` and `identity` keep the store knowing when it was lost
(deleted, replaced, damaged) and what survives that: the marker and the
seen journal beside it; `examine` is the store seen by `loaxa doctor`. No
SQL is written outside this package.
"""

from loaxa.store.db import Store, open_readonly
from loaxa.store.ledger import Completion, Ledger
from loaxa.store.records import Accepted, Answer, Play, StoredBulletin, aired, as_run
from loaxa.store.txn import Txn

__all__ = [
    "Accepted",
    "Answer",
    "Completion",
    "Ledger",
    "Play",
    "Store",
    "StoredBulletin",
    "Txn",
    "aired",
    "as_run",
    "open_readonly",
]
