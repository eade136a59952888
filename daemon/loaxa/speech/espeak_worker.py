"""A child process that voices sentences with pyttsx3 (espeak-ng).

pyttsx3 is run here, never in the daemon: `runAndWait` has been seen to hang
on a Raspberry Pi, and a hung child can be killed where a hung thread cannot.
Each request is one `save_to_file` followed by one `runAndWait`, because only
the last of several queued `save_to_file` calls is written.

Protocol: one JSON object per line on stdin `{"text", "path", "voice", "rate"}`,
one JSON line back on the original stdout `{"ok": true}` or
`{"ok": false, "error": "..."}`. pyttsx3 prints chatter to stdout, so that
stream is moved to stderr and the protocol keeps its own descriptor.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        import pyttsx3

        engine = pyttsx3.init("espeak")
        base_rate = int(engine.getProperty("rate") or 175)
    except Exception as exc:  # the parent falls back to the espeak-ng command
        reply.write(json.dumps({"ok": False, "error": f"pyttsx3 unavailable: {exc}"}) + "\n")
        return 1
    reply.write(json.dumps({"ok": True, "ready": True}) + "\n")
    for line in sys.stdin:
        try:
            req = json.loads(line)
            engine.setProperty("voice", req["voice"])
            engine.setProperty("rate", int(base_rate * 0.85 * float(req.get("rate", 1.0))))
            engine.save_to_file(req["text"], req["path"])
            engine.runAndWait()
            reply.write(json.dumps({"ok": True}) + "\n")
        except Exception as exc:
            reply.write(json.dumps({"ok": False, "error": str(exc)}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
