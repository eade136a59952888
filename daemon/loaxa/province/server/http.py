"""uvicorn serving the API on a thread of its own, beside the MQTT session."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn

from loaxa.errors import LinkError
from loaxa.province.server.api import Context, build_app
from loaxa.province.server.database import Database
from loaxa.province.server.ingest import Ingest
from loaxa.province.server.settings import ProvinceServerSettings

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, settings: ProvinceServerSettings, db: Database, ingest: Ingest) -> None:
        ctx = Context(settings=settings, db=db, publish=ingest.publish, status=ingest.status)
        app = build_app(ctx)
        # Set on stop: answers that last (the console's live streams) end, for uvicorn waits for every open one.
        self.stopping = app.state.stopping = threading.Event()
        config = uvicorn.Config(
            app, host=settings.http.host, port=settings.http.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise LinkError("the HTTP API could not start (is the port in use?)")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        servers: Any = self.server.servers
        return int(servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.stopping.set()
        self.server.should_exit = True
        self._thread.join(timeout=10)
