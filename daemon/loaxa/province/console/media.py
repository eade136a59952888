"""Recorded audio for bulletins: an editor uploads it, the stations download it from here.

An upload is checked the way a station will check it: ffprobe reads its
header and ffmpeg decodes all of it (`loaxa.sources.recorded.decode_audio`,
the same demuxer whitelist and the same two-hour limit), so a file the
server accepts is a file the stations can play. It is kept under
`<data_dir>/media/<sha256>.<ext>` (written to a temporary file, then
renamed) with a row in `media`, and served without a login at
`/media/<sha256>.<ext>`: a bulletin's `audio` is that URL and the digest.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from loaxa.hashing import sha256_file
from loaxa.province.console.web import Console, User
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database
from loaxa.province.server.settings import ProvinceServerSettings
from loaxa.sources._common import SourceError
from loaxa.sources.recorded import MAX_DURATION_S, decode_audio, decoded_path

log = logging.getLogger(__name__)

TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac"}
NAME = re.compile(r"^[0-9a-f]{64}\.(" + "|".join(TYPES) + r")$")
CHECK_RATE = 8000  # decoding to check a file: the rate does not matter, a low one keeps the scratch file small
FORM_SLACK = 64 * 1024  # the multipart envelope around the file: boundaries, headers, the CSRF field
ANY_ADDRESS = ("0.0.0.0", "::", "")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BodyTooLarge(Exception):
    """The request body passed its limit while arriving."""


def media_dir(settings: ProvinceServerSettings) -> Path:
    return settings.data_dir / "media"


def base_url(settings: ProvinceServerSettings, request: Request) -> str:
    """`console.media_url`, or this server's own address (the port it really listens on when 0 was asked)."""
    if settings.console.media_url:
        return settings.console.media_url.rstrip("/")
    port = settings.http.port or (request.scope.get("server") or ("", 0))[1]
    host = settings.http.host
    if host in ANY_ADDRESS:  # listening everywhere: the name the editor's browser reached it by
        host = request.url.hostname or host
    return f"http://{_bracketed(host)}:{port}/media"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def kind_of(path: Path) -> str:
    """The container, from the first bytes of a file ffmpeg has decoded (one of its whitelisted demuxers)."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    return "mp3"  # an ID3 tag or a bare frame sync: the only other demuxer allowed


def store(db: Database, folder: Path, data: bytes, filename: str, user: str) -> dict[str, Any]:
    """Check, keep and record one upload; SourceError (why it is refused) or OSError (the disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())  # the rename below must not publish a half-written file
        try:
            samples = decode_audio(tmp, CHECK_RATE)
            duration_s = round(len(samples) / CHECK_RATE, 2)
            del samples
        finally:
            decoded_path(tmp, CHECK_RATE).unlink(missing_ok=True)
        digest = sha256_file(tmp)
        ext = kind_of(tmp)
        target = folder / f"{digest}.{ext}"
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _record(db, digest, filename, TYPES[ext], len(data), duration_s, user)
    log.info("upload %s by %s: %s, %d bytes, %.1f s", digest[:12], user, ext, len(data), duration_s)
    return {"sha256": digest, "name": target.name, "bytes": len(data), "duration_s": duration_s}


def _record(db: Database, digest: str, filename: str, mime: str, size: int, duration_s: float, user: str) -> None:
    c = t.media.c
    row = dict(
        sha256=digest,
        filename=filename[:500],
        mime=mime,
        bytes=size,
        duration_s=duration_s,
        uploaded_by=user,
        uploaded_at=time.time(),
    )
    try:
        with db.engine.begin() as conn:
            if conn.execute(select(c.sha256).where(c.sha256 == digest)).first() is None:
                conn.execute(t.media.insert().values(**row))
    except IntegrityError:
        pass  # the same file, uploaded twice at once: one row is all it needs


def limited(
    console: Console, endpoint: Callable[[Request], Awaitable[Response]], max_bytes: int
) -> Callable[[Request], Awaitable[Response]]:
    """Refuse a body over `max_bytes` with 413 before reading it: by its Content-Length, or as it arrives."""

    async def refuse(request: Request) -> Response:
        action = f"{request.method} {request.url.path}"
        await run_in_threadpool(console.audit, None, action, 413, f"body over {max_bytes} bytes")
        message = _too_large(console.gettext(console.ctx.settings.console.language), max_bytes)
        return PlainTextResponse(message, status_code=413, headers={"Connection": "close"})

    async def guarded(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            return await refuse(request)
        seen = 0
        receive = request.receive

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise BodyTooLarge()
            return message

        try:
            return await endpoint(Request(request.scope, counting))
        except BodyTooLarge:
            return await refuse(request)

    return guarded


def why(exc: SourceError, _: Callable[[str], str]) -> str:
    """The station's reason (English, as in its receipts) in the editor's language where it is a known one."""
    said = str(exc)
    if "decode" in said and "ffmpeg" in said:
        return _("it is not a WAV, MP3, OGG or FLAC file that ffmpeg can decode")
    if said.startswith("recording longer than"):
        return _("it is longer than {minutes} minutes").format(minutes=f"{MAX_DURATION_S / 60:g}")
    if "no audio" in said:
        return _("it holds no sound")
    return said


def _too_large(_: Callable[[str], str], max_bytes: int) -> str:
    return _("the file is larger than {mb} MB, the most this server accepts").format(mb=max_bytes // (1024 * 1024))


def routes(console: Console) -> list[BaseRoute]:
    settings = console.ctx.settings
    max_bytes = settings.console.upload_max_mb * 1024 * 1024
    if settings.console.media_url is None and settings.http.host in LOOPBACK:
        log.warning(
            "console.media_url is not set and the server listens on %s: stations elsewhere cannot download "
            "uploaded recordings from that address; set console.media_url to the URL they reach /media by",
            settings.http.host,
        )

    def upload(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        _ = console.gettext(user.language)
        file = (form or {}).get("file")
        if not isinstance(file, dict) or not file.get("data"):
            return JSONResponse({"error": _("choose an audio file to upload")}, status_code=400)
        if len(file["data"]) > max_bytes:
            return JSONResponse({"error": _too_large(_, max_bytes)}, status_code=413)
        try:
            kept = store(console.ctx.db, media_dir(settings), file["data"], str(file.get("name") or "audio"), user.name)
        except SourceError as exc:
            message = _("this file cannot be used as a recording: {reason}").format(reason=why(exc, _))
            request.state.audit_detail = f"refused {str(file.get('name') or '')[:100]}: {exc}"
            return JSONResponse({"error": message}, status_code=422)
        except OSError as exc:
            log.error("cannot keep an upload in %s: %s", media_dir(settings), exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message = _("the server's disk is full: the recording was not kept; tell the administrator")
            else:
                message = _("the server could not keep the recording: {reason}").format(reason=exc.strerror)
            return JSONResponse({"error": message}, status_code=507)
        request.state.audit_detail = f"uploaded {kept['name']} ({str(file.get('name') or '')[:100]})"
        return JSONResponse(
            {
                "url": f"{base_url(settings, request)}/{kept['name']}",
                "sha256": kept["sha256"],
                "bytes": kept["bytes"],
                "duration_s": kept["duration_s"],
                "filename": str(file.get("name") or ""),
            }
        )

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        path = media_dir(settings) / name
        if not NAME.match(name) or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type=TYPES[name.rsplit(".", 1)[1]], headers={"Cache-Control": "max-age=86400"})

    return [
        Route(
            "/console/uploads",
            limited(console, console.page("editor")(upload), max_bytes + FORM_SLACK),
            methods=["POST"],
        ),
        Route("/media/{name}", serve, methods=["GET", "HEAD"]),
    ]
