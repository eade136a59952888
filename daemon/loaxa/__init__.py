"""loaxa: a commune loudspeaker station that reads provincial bulletins aloud."""

__version__ = "0.1.0"
