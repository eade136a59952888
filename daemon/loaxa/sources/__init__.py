"""Sounds a bulletin can carry besides text: a recorded file, a live stream."""

from loaxa.sources._common import NotReady, SourceError
from loaxa.sources.recorded import decode_audio, fetch_audio, prune_cache, validate_audio_spec
from loaxa.sources.stream import StreamRelay, validate_stream_spec

__all__ = [
    "NotReady",
    "SourceError",
    "StreamRelay",
    "decode_audio",
    "fetch_audio",
    "prune_cache",
    "validate_audio_spec",
    "validate_stream_spec",
]
