"""Multi-part bulletins (protocol 1.1): texts and recordings in order, in one on-air session.

E.g. the Vietnamese text read by the voice, then the recorded version in the
language of an ethnic minority of the commune. `prepare` prepares every part
before the session (a recording still being fetched makes the whole
bulletin wait; one that failed fails it, before the amplifier and the
chime), so nothing airs of a bulletin that cannot air whole. The position
to resume from is `part * PART_STRIDE + sentence`: after an emergency a text
part resumes at its sentence, a recording from its beginning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loaxa.content import PART_STRIDE, Audio, Parts, Text
from loaxa.errors import LoaxaError
from loaxa.player.session import Session
from loaxa.sources._common import NotReady, SourceError

if TYPE_CHECKING:
    from loaxa.sources.registry import Program, Progress

PART_GAP_S = 1.0  # silence between two parts


@dataclass
class _Parted:
    programs: list[Program]

    def run(self, session: Session, *, start: int, progress: Progress, stop: threading.Event) -> None:
        first, sentence = divmod(start, PART_STRIDE)
        for n in range(first, len(self.programs)):
            if n > first:
                session.silence(PART_GAP_S)

            def reached(position: int, n: int = n) -> None:
                progress(n * PART_STRIDE + position)

            self.programs[n].run(session, start=sentence if n == first else 0, progress=reached, stop=stop)
            if n + 1 < len(self.programs):
                progress((n + 1) * PART_STRIDE)  # interrupted from here on, the next part starts over

    def summary(self) -> str | None:
        said = [s for s in (p.summary() for p in self.programs) if s]
        return "; ".join(said) if said else None


class PartsSource:
    """Prepares each part with the source of its kind (`text` or `audio`)."""

    def __init__(self, text: Callable[[Text], Program], audio: Callable[[Audio], Program] | None) -> None:
        self.text = text
        self.audio = audio

    def prepare(self, content: Parts) -> _Parted:
        """Every part's program; NotReady while a recording is fetched; SourceError naming the part that failed."""
        programs: list[Program] = []
        for n, part in enumerate(content.parts, 1):
            try:
                programs.append(self._prepare(part))
            except NotReady as exc:
                raise NotReady(f"part {n}: {exc.reason}") from None
            except LoaxaError as exc:
                what = "the text" if isinstance(part, Text) else "the recording"
                raise SourceError(f"part {n} ({what}) cannot air: {exc}; nothing of the bulletin aired") from None
        return _Parted(programs)

    def _prepare(self, part: Text | Audio) -> Program:
        if isinstance(part, Text):
            return self.text(part)
        if self.audio is None:
            raise SourceError("this station cannot play recorded audio")
        return self.audio(part)

    @staticmethod
    def recordings(content: Parts) -> list[Audio]:
        return [part for part in content.parts if isinstance(part, Audio)]
