"""`loaxa province serve`: the database, the MQTT session and the HTTP API in one process.

Start-up: open the database and migrate it, connect the session, then serve
HTTP. SIGTERM or SIGINT stops in reverse order: HTTP first, then each
session stores what has arrived and disconnects (what was not stored
was not acknowledged: the broker keeps it for the next start).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from loaxa.province.server.database import Database
from loaxa.province.server.ingest import Ingest
from loaxa.province.server.settings import ProvinceServerSettings

log = logging.getLogger(__name__)


class ProvinceServer:
    def __init__(self, settings: ProvinceServerSettings) -> None:
        self.settings = settings
        self.db = Database.open(settings, wait_for_space=True)
        self.ingest = Ingest(settings, self.db)
        self.http: object | None = None
        self._stop = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        if self.db.migrated:
            log.info("database %s ready", self.db.where)
        else:
            log.warning("database %s not ready: waiting for space to migrate it", self.db.where)
        self.ingest.start()
        from loaxa.province.server.http import HttpServer

        http = HttpServer(self.settings, self.db, self.ingest)
        http.start()
        log.info("listening on http://%s:%d", self.settings.http.host, http.port)
        try:
            self._stop.wait()
        finally:
            http.stop()
            self.ingest.stop()
            self.db.close()
            log.info("stopped")
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        self._stop.set()
