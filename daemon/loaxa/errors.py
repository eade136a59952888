"""One exception base, one subclass per layer.

The CLI and the daemon translate these into one readable log line and exit
code 1; anything else escaping is a bug and keeps its traceback.
"""


class LoaxaError(Exception):
    """Base of every error loaxa raises on purpose."""


class ConfigError(LoaxaError):
    """The configuration file is missing, unreadable or invalid."""


class CommandError(LoaxaError):
    """A command from the network breaks the protocol; the text says how."""


class StoreError(LoaxaError):
    """The station's SQLite store cannot be opened or written."""


class StorageFull(StoreError):
    """The store's file system has no room left; writes work again once space is freed."""


class VoiceError(LoaxaError):
    """A voice cannot be loaded or failed to synthesise."""


class AudioError(LoaxaError):
    """The audio output cannot be opened or written."""


class LinkError(LoaxaError):
    """The MQTT broker cannot be reached or refused the station."""


class ControlError(LoaxaError):
    """The local control socket is absent or answered with an error."""
