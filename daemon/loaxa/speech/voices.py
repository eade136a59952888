"""Piper voices on disk: find, list, install (pinned downloads) and verify.

A voice is `NAME.onnx` beside `NAME.onnx.json`, anywhere under the voices
folder, or named by path. Installs come from the public Piper voices
repository; each file is checked against a pinned size and SHA-256 before
it is renamed into place, so a half or wrong download is never a voice.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loaxa.download import DownloadError, HttpStatus, TooLarge, download
from loaxa.errors import VoiceError
from loaxa.hashing import sha256_file
from loaxa.speech.piper import VoiceModel

log = logging.getLogger(__name__)

BASE_URL = "https://huggingface.co/rhasspy/piper-voices/resolve/main"
URL_ENV = "LOAXA_VOICES_URL"
# The model is 63 MB: two hours still allow a link of 9 kB/s; a dead one is caught by timeout_s.
DOWNLOAD_DEADLINE_S = 7200.0


@dataclass(frozen=True)
class PinnedFile:
    size: int
    sha256: str


@dataclass(frozen=True)
class CatalogEntry:
    """Where a voice lives in the repository and what its files must be."""

    path: str
    onnx: PinnedFile
    config: PinnedFile


CATALOG: dict[str, CatalogEntry] = {
    "vi_VN-vais1000-medium": CatalogEntry(
        path="vi/vi_VN/vais1000/medium",
        onnx=PinnedFile(63_201_294, "d82296bdf909163dadcc66d20314f126589e3070ccdae720b8f28d365643fce8"),
        config=PinnedFile(4_860, "112c2fe1c75a69db88158b9440ec0a472ffcca2077c20d3787e92ea92ad2c648"),
    ),
}

Progress = Callable[[str, int, int], None]  # (file name, bytes so far, total bytes)


@dataclass(frozen=True)
class InstalledVoice:
    name: str
    onnx: Path
    size_bytes: int
    sample_rate: int | None
    language: str
    quality: str
    problem: str | None  # why it cannot be used, if it cannot


def find_voice(spec: str, voices_dir: Path) -> Path:
    """The `.onnx` file for a voice name or path; VoiceError if absent."""
    looks_like_path = spec.endswith(".onnx") or os.sep in spec or "/" in spec
    if looks_like_path:
        path = Path(spec).expanduser()
        if not path.is_absolute() and not path.exists():
            path = voices_dir / path
        if path.is_dir():
            raise VoiceError(f"voice {spec!r} is a folder; name its .onnx file")
        if not path.is_file():
            raise VoiceError(f"voice file {path} not found")
        return path
    direct = voices_dir / f"{spec}.onnx"
    if direct.is_file():
        return direct
    nested = sorted(voices_dir.rglob(f"{spec}.onnx")) if voices_dir.is_dir() else []
    if nested:
        return nested[0]
    hint = f"; run `loaxa voices install {spec}`" if spec in CATALOG else ""
    raise VoiceError(f"voice {spec!r} is not installed in {voices_dir}{hint}")


def list_voices(voices_dir: Path) -> list[InstalledVoice]:
    """Every `.onnx` under the folder, with what its config says or why it is unusable."""
    found: list[InstalledVoice] = []
    if not voices_dir.is_dir():
        return found
    for onnx in sorted(voices_dir.rglob("*.onnx")):
        name = onnx.name.removesuffix(".onnx")
        try:
            config = VoiceModel.from_file(onnx.with_name(onnx.name + ".json"))
            found.append(
                InstalledVoice(
                    name, onnx, onnx.stat().st_size, config.sample_rate, config.language, config.quality, None
                )
            )
        except VoiceError as exc:
            found.append(InstalledVoice(name, onnx, onnx.stat().st_size, None, "", "", str(exc)))
    return found


def base_url(override: str | None = None) -> str:
    return (override or os.environ.get(URL_ENV) or BASE_URL).rstrip("/")


def install(
    name: str,
    voices_dir: Path,
    url: str | None = None,
    catalog: dict[str, CatalogEntry] | None = None,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
    deadline_s: float = DOWNLOAD_DEADLINE_S,
) -> Path:
    """Download a catalogued voice, check size and SHA-256, then rename into place.

    `timeout_s` bounds a stall (no data at all); `deadline_s` each file's whole transfer.
    """
    catalog = CATALOG if catalog is None else catalog
    entry = catalog.get(name)
    if entry is None:
        raise VoiceError(f"unknown voice {name!r}; installable: {', '.join(sorted(catalog))}")
    voices_dir.mkdir(parents=True, exist_ok=True)
    root = f"{base_url(url)}/{entry.path}"
    onnx_target = voices_dir / f"{name}.onnx"
    config_target = voices_dir / f"{name}.onnx.json"
    temps: list[Path] = []
    try:
        for suffix, pin in ((".onnx.json", entry.config), (".onnx", entry.onnx)):
            file_url = f"{root}/{name}{suffix}"
            temps.append(
                _download(file_url, voices_dir, pin, progress=progress, timeout_s=timeout_s, deadline_s=deadline_s)
            )
        # Config first: a voice counts as installed once its .onnx is there.
        os.replace(temps[0], config_target)
        os.replace(temps[1], onnx_target)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    log.info("installed voice %s in %s", name, voices_dir)
    return onnx_target


def _download(
    url: str, folder: Path, pin: PinnedFile, *, progress: Progress | None, timeout_s: float, deadline_s: float
) -> Path:
    """One pinned file into a temporary file in `folder`; VoiceError unless size and SHA-256 match."""
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    label = url.rsplit("/", 1)[-1]
    report = (lambda got: progress(label, got, pin.size)) if progress else None
    try:
        with os.fdopen(fd, "wb") as out:
            got = download(url, out, max_bytes=pin.size, deadline_s=deadline_s, stall_s=timeout_s, progress=report)
    except TooLarge:
        tmp.unlink(missing_ok=True)
        raise VoiceError(f"{label}: larger than the pinned {pin.size:,} bytes; refused") from None
    except HttpStatus as exc:
        tmp.unlink(missing_ok=True)
        raise VoiceError(f"{label}: download failed: HTTP {exc.status} from {url}") from None
    except (DownloadError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise VoiceError(f"{label}: download failed from {url}: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if got.size != pin.size:
        tmp.unlink(missing_ok=True)
        raise VoiceError(f"{label}: got {got.size:,} bytes, pinned size is {pin.size:,}; refused")
    if got.sha256 != pin.sha256:
        tmp.unlink(missing_ok=True)
        raise VoiceError(f"{label}: SHA-256 {got.sha256} does not match the pinned {pin.sha256}; refused")
    return tmp


def verify(
    voices_dir: Path, catalog: dict[str, CatalogEntry] | None = None, load: bool = True, deadline_s: float = 20.0
) -> list[tuple[str, str | None]]:
    """(name, problem or None) for each installed voice: config, pins, and a model load."""
    from loaxa.speech.voice_process import VoiceProcess

    catalog = CATALOG if catalog is None else catalog
    results: list[tuple[str, str | None]] = []
    for voice in list_voices(voices_dir):
        problem = voice.problem
        entry = catalog.get(voice.name)
        if problem is None and entry is not None:
            for path, pin in (
                (voice.onnx, entry.onnx),
                (voice.onnx.with_name(voice.onnx.name + ".json"), entry.config),
            ):
                if path.stat().st_size != pin.size or sha256_file(path) != pin.sha256:
                    problem = f"{path.name} differs from the pinned download (size or SHA-256)"
                    break
        if problem is None and load:
            try:
                # in a child process, like the station: a crash in onnxruntime is a problem to report
                VoiceProcess.start(voice.onnx, threads=1, deadline_s=deadline_s).close()
            except VoiceError as exc:
                problem = str(exc)
        results.append((voice.name, problem))
    return results
