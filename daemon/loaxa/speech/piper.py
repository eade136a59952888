"""Piper VITS voices on onnxruntime, with a session tuned for a small board.

The stages follow Piper's own voice class: `phonemize` (espeak-ng, clause by
clause, punctuation kept), `phonemes_to_ids` (BOS, each phoneme then PAD,
EOS), `ids_to_audio` (one onnxruntime run). The session is built here rather
than by `piper.PiperVoice.load` so that threads, spinning and memory
patterns can be set; it is warmed up before the voice is handed out.

`NeuralVoice` and `VoiceModel` are named apart from piper-tts's own
`PiperVoice` and `PiperConfig`: the benchmark loads both side by side.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loaxa.errors import VoiceError
from loaxa.hashing import sha256_file

log = logging.getLogger(__name__)

BOS, EOS, PAD = "^", "$", "_"
MAX_PIECE_PHONEMES = 120  # longer runs raise peak memory (measured, see bench)
CLAUSE_MARKS = frozenset(",:;.!?")
WARM_UP_TEXT = "xin chào"

_ESPEAK_LOCK = threading.Lock()  # espeak-ng keeps one global state per process
_espeak: Any = None


@dataclass(frozen=True)
class VoiceModel:
    """What a voice model's `.onnx.json` says: the parts synthesis needs."""

    sample_rate: int
    espeak_voice: str
    phoneme_id_map: dict[str, list[int]] = field(repr=False)
    phoneme_type: str = "espeak"
    num_speakers: int = 1
    speaker_id_map: dict[str, int] = field(default_factory=dict)
    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8
    quality: str = ""
    language: str = ""

    @classmethod
    def from_file(cls, path: Path) -> VoiceModel:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VoiceError(f"{path}: voice config not found (expected next to the .onnx file)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VoiceError(f"{path}: not a readable JSON voice config: {exc}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "voice config") -> VoiceModel:
        """Validate every field at once; the error names each bad key."""
        problems: list[str] = []

        def get(*keys: str, kind: type | tuple[type, ...], default: Any = None, required: bool = True) -> Any:
            node = raw
            for key in keys:
                if not isinstance(node, dict) or key not in node:
                    if required:
                        problems.append(f"{'.'.join(keys)}: missing")
                    return default
                node = node[key]
            if isinstance(node, bool) or not isinstance(node, kind):
                problems.append(f"{'.'.join(keys)}: expected {getattr(kind, '__name__', 'a number')}, got {node!r:.40}")
                return default
            return node

        if not isinstance(raw, dict):
            raise VoiceError(f"{source}: expected a JSON object")
        rate = get("audio", "sample_rate", kind=int, default=0)
        if rate and not 8000 <= rate <= 96000:
            problems.append(f"audio.sample_rate: {rate} is not a sample rate in Hz")
        ptype = get("phoneme_type", kind=str, default="espeak", required=False)
        if ptype not in ("espeak", "text"):
            problems.append(f"phoneme_type: {ptype!r} is not supported (espeak or text)")
        espeak = get("espeak", "voice", kind=str, default="", required=ptype == "espeak")
        id_map = get("phoneme_id_map", kind=dict, default={})
        clean_map: dict[str, list[int]] = {}
        for symbol, ids in id_map.items():
            if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and i >= 0 for i in ids):
                problems.append(f"phoneme_id_map[{symbol!r}]: expected a list of ids, got {ids!r:.40}")
            else:
                clean_map[symbol] = ids
        missing = [s for s in (BOS, EOS, PAD) if id_map and s not in id_map]
        if missing:
            problems.append(f"phoneme_id_map: lacks {', '.join(repr(s) for s in missing)}")
        speakers = get("num_speakers", kind=int, default=1, required=False)
        if speakers < 1:
            problems.append(f"num_speakers: {speakers} is less than 1")
        inference = {
            k: get("inference", k, kind=(int, float), default=d, required=False)
            for k, d in (("noise_scale", 0.667), ("length_scale", 1.0), ("noise_w", 0.8))
        }
        if problems:
            raise VoiceError(f"{source}: " + "; ".join(problems))
        lang: dict[str, Any] = raw["language"] if isinstance(raw.get("language"), dict) else {}
        audio = raw.get("audio", {})
        return cls(
            sample_rate=rate,
            espeak_voice=espeak,
            phoneme_id_map=clean_map,
            phoneme_type=ptype,
            num_speakers=speakers,
            speaker_id_map=dict(raw.get("speaker_id_map") or {}),
            noise_scale=float(inference["noise_scale"]),
            length_scale=float(inference["length_scale"]),
            noise_w=float(inference["noise_w"]),
            quality=str(audio.get("quality", "")),
            language=str(lang.get("code", "")),
        )


def session_options(threads: int = 0) -> Any:
    """CPU options for a small board: fixed threads that sleep when idle."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Pattern planning keeps the largest run's buffers; off gives lower peaks.
    opts.enable_mem_pattern = False
    # Spinning threads burn the cores the player and MQTT need between runs.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 4  # errors are raised and logged by us, once
    return opts


class NeuralVoice:
    """One Piper voice: text in, float32 samples out."""

    def __init__(self, session: Any, config: VoiceModel, name: str, path: Path, speaker_id: int | None = None) -> None:
        self.session = session
        self.config = config
        self.name = f"piper:{name}"
        self.path = path
        self.sample_rate = config.sample_rate
        self.speaker_id = speaker_id
        self._runs: set[Any] = set()
        self._runs_lock = threading.Lock()
        self._missing: set[str] = set()
        self.identity = self.name  # load() adds the files' size and digest

    @classmethod
    def load(
        cls,
        onnx_path: str | os.PathLike[str],
        config_path: str | os.PathLike[str] | None = None,
        threads: int = 0,
        espeak_voice: str | None = None,
        warm_up: bool = True,
        deadline_s: float = 60.0,
    ) -> NeuralVoice:
        """Read the config, check the model's inputs, build and warm the session."""
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        config_path = Path(config_path) if config_path else onnx_path.with_name(onnx_path.name + ".json")
        if not onnx_path.is_file():
            raise VoiceError(f"{onnx_path}: voice model not found")
        config = VoiceModel.from_file(config_path)
        if espeak_voice:
            config = _replace(config, espeak_voice=espeak_voice)
        started = time.perf_counter()
        try:
            session = ort.InferenceSession(
                str(onnx_path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise VoiceError(f"{onnx_path}: onnxruntime cannot load the model: {exc}") from None
        names = {i.name for i in session.get_inputs()}
        needed = {"input", "input_lengths", "scales"} | ({"sid"} if config.num_speakers > 1 else set())
        if not needed <= names:
            raise VoiceError(f"{onnx_path}: not a Piper voice: inputs {sorted(names)}, expected {sorted(needed)}")
        voice = cls(session, config, onnx_path.name.removesuffix(".onnx"), onnx_path)
        voice.identity = f"{voice.name}:{onnx_path.stat().st_size}:{sha256_file(config_path)[:16]}"
        if warm_up:
            # A model that hangs on its first run is as unusable as one that fails to load.
            timer = threading.Timer(deadline_s, voice.terminate)
            timer.start()
            try:
                voice.synthesize(WARM_UP_TEXT)
            except VoiceError as exc:
                hint = f" (no audio within {deadline_s:g} s)" if not timer.is_alive() else ""
                raise VoiceError(f"{onnx_path}: warm-up failed{hint}: {exc}") from None
            finally:
                timer.cancel()
        log.info("voice %s ready in %.2f s", voice.name, time.perf_counter() - started)
        return voice

    # -- stages -------------------------------------------------------------
    def phonemize(self, text: str) -> list[list[str]]:
        """Phonemes per sentence, punctuation kept, accents as separate marks."""
        global _espeak
        if self.config.phoneme_type == "text":
            return [list(unicodedata.normalize("NFD", text))] if text.strip() else []
        with _ESPEAK_LOCK:
            if _espeak is None:
                from piper.phonemize_espeak import EspeakPhonemizer

                _espeak = EspeakPhonemizer()
            try:
                sentences = _espeak.phonemize(self.config.espeak_voice, text)
            except Exception as exc:
                raise VoiceError(f"espeak-ng cannot phonemise with voice {self.config.espeak_voice!r}: {exc}") from None
        return [s for s in sentences if any(p.strip() for p in s)]

    def phonemes_to_ids(self, phonemes: list[str]) -> list[int]:
        """BOS, then each known phoneme followed by PAD, then EOS."""
        return phoneme_ids(phonemes, self.config.phoneme_id_map, missing=self._missing, voice=self.name)

    def ids_to_audio(self, ids: list[int], rate: float = 1.0, speaker_id: int | None = None) -> np.ndarray:
        """One model run; `rate` > 1 speaks faster. Raw output, not normalised."""
        import onnxruntime as ort

        cfg = self.config
        feeds = {
            "input": np.asarray([ids], dtype=np.int64),
            "input_lengths": np.asarray([len(ids)], dtype=np.int64),
            "scales": np.asarray([cfg.noise_scale, cfg.length_scale / rate, cfg.noise_w], dtype=np.float32),
        }
        if cfg.num_speakers > 1:
            sid = self.speaker_id if speaker_id is None else speaker_id
            feeds["sid"] = np.asarray([sid or 0], dtype=np.int64)
        run = ort.RunOptions()
        with self._runs_lock:
            self._runs.add(run)
        try:
            out = self.session.run(None, feeds, run)[0]
        except Exception as exc:
            raise VoiceError(f"{self.name} failed on {len(ids)} ids: {_ort_message(exc)}") from None
        finally:
            with self._runs_lock:
                self._runs.discard(run)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    # -- whole text -----------------------------------------------------------
    def pieces(
        self, text: str, first_max: int = MAX_PIECE_PHONEMES, max_len: int = MAX_PIECE_PHONEMES
    ) -> list[list[str]]:
        """Phoneme runs of at most `max_len`, cut at clause marks, else at spaces."""
        out = [piece for sentence in self.phonemize(text) for piece in split_phonemes(sentence, max_len)]
        if out and len(out[0]) > first_max:
            # A short first piece starts the sound sooner; its remainder is re-cut.
            head, *tail = split_phonemes(out[0], first_max)
            rest = [p for piece in tail for p in piece + [" "]]
            out = [head, *split_phonemes(rest, max_len), *out[1:]]
        return out

    def synthesize(self, text: str, rate: float = 1.0) -> np.ndarray:
        parts = [self.ids_to_audio(self.phonemes_to_ids(p), rate) for p in self.pieces(text)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def terminate(self) -> None:
        """Abort the runs in progress (they raise VoiceError); used past a deadline."""
        with self._runs_lock:
            for run in self._runs:
                run.terminate = True

    def close(self) -> None:
        self.terminate()
        self.session = None


def phoneme_ids(phonemes: list[str], id_map: dict[str, list[int]], *, missing: set[str], voice: str) -> list[int]:
    """BOS, then each known phoneme followed by PAD, then EOS; an unknown phoneme is skipped (logged once)."""
    ids = list(id_map[BOS]) + list(id_map[PAD])
    for phoneme in phonemes:
        mapped = id_map.get(phoneme)
        if mapped is None:
            if phoneme not in missing:
                missing.add(phoneme)
                log.debug("phoneme %r is not in the map of %s; skipped", phoneme, voice)
            continue
        ids.extend(mapped)
        ids.extend(id_map[PAD])
    ids.extend(id_map[EOS])
    return ids


def split_phonemes(phonemes: list[str], max_len: int = MAX_PIECE_PHONEMES) -> list[list[str]]:
    """Cut a sentence into runs of at most `max_len` at the latest good boundary."""
    rest = _strip(phonemes)
    out: list[list[str]] = []
    while len(rest) > max_len:
        window = rest[: max_len + 1]
        floor = max_len // 3
        cut = next(
            (i + 1 for i in range(len(window) - 2, floor, -1) if window[i] in CLAUSE_MARKS and window[i + 1] == " "), 0
        )
        if not cut:
            cut = next((i for i in range(len(window) - 1, floor, -1) if window[i] == " "), max_len)
        out.append(_strip(rest[:cut]))
        rest = _strip(rest[cut:])
    if rest:
        out.append(rest)
    return [p for p in out if p]


def _strip(phonemes: list[str]) -> list[str]:
    start, end = 0, len(phonemes)
    while start < end and phonemes[start] == " ":
        start += 1
    while end > start and phonemes[end - 1] == " ":
        end -= 1
    return list(phonemes[start:end])


def _ort_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split("Status Message: ", 1)[-1]


def _replace(config: VoiceModel, **changes: Any) -> VoiceModel:
    from dataclasses import replace

    return replace(config, **changes)
