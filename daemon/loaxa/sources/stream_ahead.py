"""Streams on the player's side: connected before they go on air, off the player's thread.

The relay itself (download → ffmpeg → blocks) is `stream.StreamRelay`; this
module holds the relays that are connecting until the player takes one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from loaxa.content import Stream
from loaxa.download import PUBLIC_ONLY, AddressPolicy
from loaxa.player.session import BLOCK_S, Session
from loaxa.sources._common import NotReady, SourceError, host_of
from loaxa.sources.stream import StreamRelay


@dataclass
class _Relay:
    """A stream already connected and giving audio, to put on air."""

    relay: StreamRelay
    last_summary: str | None = None

    def run(self, session: Session, *, start: int, progress: Callable[[int], None], stop: threading.Event) -> None:
        try:
            for block in self.relay:
                if stop.is_set():
                    break
                session.play(block)
        finally:
            self.relay.stop()
            self.last_summary = self.relay.summary()

    def summary(self) -> str | None:
        return self.last_summary

    def close(self) -> None:
        self.relay.stop()


class StreamSource:
    """Streams are connected before they go on air, off the player's thread, like recordings fetched.

    `prepare` starts the connection and answers at once: NotReady while no
    audio has come yet, the relay once it has, or the SourceError of a
    stream that gave no audio at all in its first seconds (never aired).
    `on_ready` is called when a connecting stream gives its first audio or
    is found dead: the player looks again.
    """

    def __init__(
        self, rate: int, *, addresses: AddressPolicy = PUBLIC_ONLY, on_ready: Callable[[], None] = lambda: None
    ) -> None:
        self.rate = rate
        self.addresses = addresses
        self.on_ready = on_ready
        self._lock = threading.Lock()
        self._connecting: dict[tuple[tuple[str, ...], float], StreamRelay] = {}

    def prepare(self, content: Stream) -> _Relay:
        key = (content.urls, content.duration_s)
        with self._lock:
            relay = self._connecting.get(key)
            if relay is not None and relay.stopped:  # connected, then left unclaimed too long: connect anew
                relay = None
            if relay is None:
                relay = self._connecting[key] = self._relay(content)
                relay.start()
            if relay.failed is not None:
                del self._connecting[key]
                raise SourceError(f"the stream gave no audio: {relay.failed}")
            if not relay.has_audio:
                raise NotReady(f"connecting to the stream at {host_of(content.url)}")
            del self._connecting[key]  # on air from here: the program owns it
        return _Relay(relay)

    def ready(self, content: Stream) -> bool:
        """Whether `prepare` would give a program now; starts connecting if nobody has."""
        try:
            program = self.prepare(content)
        except NotReady:
            return False
        except SourceError:
            return False
        with self._lock:  # asked, not taken: keep it connected for the `prepare` to come
            self._connecting.setdefault((content.urls, content.duration_s), program.relay)
        return True

    def close(self) -> None:
        with self._lock:
            relays, self._connecting = list(self._connecting.values()), {}
        for relay in relays:
            relay.stop()

    def _relay(self, content: Stream) -> StreamRelay:
        return StreamRelay(
            content.urls,
            content.duration_s,
            self.rate,
            block_s=BLOCK_S,
            addresses=self.addresses,
            on_change=self.on_ready,
        )
