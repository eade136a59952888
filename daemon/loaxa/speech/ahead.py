"""Voicing ahead: scheduled texts are synthesised into the cache before their slot.

One thread, one text at a time behind a bounded queue; the player's own
synthesis shares the voice's lock, so a bulletin on air is never slowed by
more than one sentence of work ahead.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from loaxa.content import Parts, Text, content_of
from loaxa.speech.pipeline import Speaker

log = logging.getLogger(__name__)

QUEUE_SIZE = 100


class VoiceAhead:
    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker
        self._todo: queue.Queue[Text | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="voice-ahead", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        try:
            self._todo.put_nowait(None)
        except queue.Full:
            pass  # a daemon thread: it ends with the process

    def join(self, timeout_s: float) -> None:
        """Wait for the thread to end after `stop` (it voices what was queued before it first)."""
        self._thread.join(timeout_s)

    def prepare(self, body: dict[str, Any]) -> None:
        """Queue a scheduled bulletin's text (each text part of a multi-part one) to be voiced ahead."""
        content = content_of(body)
        texts = [content] if isinstance(content, Text) else []
        if isinstance(content, Parts):
            texts = [part for part in content.parts if isinstance(part, Text)]
        try:
            for text in texts:
                self._todo.put_nowait(text)
        except queue.Full:
            log.warning("too many bulletins to voice ahead; this one will be voiced on air")

    def _run(self) -> None:
        while True:
            text = self._todo.get()
            if text is None:
                return
            try:
                self.speaker.prepare(text.text, text.rate)
            except Exception as exc:  # the occurrence will synthesise on air instead
                log.warning("could not voice a scheduled bulletin ahead: %s", exc)
