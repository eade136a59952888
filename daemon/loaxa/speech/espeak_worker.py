"""A child process that voices sentences with pyttsx3 (espeak-ng).

pyttsx3 is run here, never in the daemon: `runAndWait` has been seen to hang
on a Raspberry Pi, and a hung child can be killed where a hung thread cannot.
Each request is one `save_to_file` followed by one `runAndWait`, because only
the last of several queued `save_to_file` calls is written.

Protocol: one JSON object per line on stdin `{"text", "path", "voice", "rate"}`,
one JSON line back on the original stdout `{"ok": true, "frames": N}` or
`{"ok": false, "error": "..."}`. The answer comes only after the file was
checked: pyttsx3's espeak driver can return from `runAndWait` with no file
or a file short of its last samples (its writer runs in a synthesis
callback), so the worker waits briefly for a complete WAV and says when
there is none; the parent then speaks that sentence with the command. pyttsx3 prints chatter to stdout, so that
stream is moved to stderr and the protocol keeps its own descriptor.
"""

from __future__ import annotations

import json
import os
import sys
import time
import wave

SETTLE_S = 1.0  # how long a file may take to appear complete after runAndWait


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
            reply.write(json.dumps(_check(req["path"])) + "\n")
        except Exception as exc:
            reply.write(json.dumps({"ok": False, "error": str(exc)}) + "\n")
    return 0


def _check(path: str) -> dict[str, object]:
    """What the WAV at `path` holds, once it is complete; an error when it never is."""
    deadline = time.monotonic() + SETTLE_S
    problem = "no file was written"
    while True:
        try:
            with wave.open(path, "rb") as wav:
                frames = wav.getnframes()
                expected = 44 + frames * wav.getsampwidth() * wav.getnchannels()
            if frames > 0 and os.path.getsize(path) >= expected:
                return {"ok": True, "frames": frames}
            problem = f"the file holds {frames} frames"
        except FileNotFoundError:
            problem = "no file was written"
        except (OSError, EOFError, wave.Error) as exc:
            problem = f"the file is incomplete ({exc})"
        if time.monotonic() >= deadline:
            return {"ok": False, "error": f"pyttsx3 wrote no usable audio: {problem}"}
        time.sleep(0.02)


if __name__ == "__main__":
    raise SystemExit(main())
