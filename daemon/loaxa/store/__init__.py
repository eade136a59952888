"""The station's memory: bulletins, what was seen, plays to make, events to send.

`db` holds the SQLite file and the events outbox; `ledger` is the one owner
of bulletin and play state and the receipts each change causes. No SQL is
written outside this package.
"""

from loaxa.store.db import Store, open_readonly
from loaxa.store.ledger import Accepted, Completion, Ledger, Play, StoredBulletin, Txn, aired

__all__ = ["Accepted", "Completion", "Ledger", "Play", "Store", "StoredBulletin", "Txn", "aired", "open_readonly"]
