"""`loaxa live`: speak through the loudspeakers from the station's microphone or line input, until stopped."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from typing import Any

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.errors import LoaxaError

POLL_S = 1.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="a live announcement from audio.live_input, until Ctrl-C (or --seconds)")
    add_config_arg(p)
    p.add_argument("--seconds", type=float, help="stop by itself after this long")
    p.add_argument("--volume", type=float, help="0-1 (default: the station volume)")
    p.set_defaults(func=live)


def live(args: argparse.Namespace) -> int:
    from loaxa.control import request as ask

    settings = settings_from(args)
    if args.seconds is not None and args.seconds <= 0:
        raise LoaxaError("--seconds must be more than 0")
    socket = settings.control_socket
    start: dict[str, Any] = {"cmd": "live", "action": "start", "volume": args.volume}
    if args.seconds is not None:
        start["max_s"] = args.seconds + 60  # the daemon's own limit, should this command be killed
    reply = ask(socket, start)
    print(f"{reply['id']}: live from {settings.audio.live_input!r}; press Ctrl-C to end", flush=True)
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        # Until a signal or --seconds; asked every second, so a live play that failed (no input) or
        # was ended by the daemon is reported at once rather than when the technician gives up.
        while not stopped.wait(POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not ask(socket, {"cmd": "live", "action": "status"}).get("open"):
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    done = ask(socket, {"cmd": "live", "action": "stop"}, timeout_s=60)
    print(f"{done['id']}: {done.get('state')}: {done.get('detail') or ''}".rstrip(": "))
    return 0 if done.get("state") == "done" else 1
