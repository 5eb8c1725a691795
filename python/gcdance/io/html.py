"""A dance as one self-contained ``.html`` file: a 3D player with the music, for any browser.

``save_html(dance, "dance.html")`` (or ``dance.save("dance.html")``) writes the built player
template (``gcdance.web``, ``dist/standalone.html``: three.js's glTF loader and animation mixer,
orbit controls, play/pause and a timeline, all inlined) with three data blocks filled in:

- the dance as ``.glb`` (``gcdance.io.gltf.glb_bytes``), base64;
- the music, base64: the segment the dance was made for (``[start, start + frames / fps)``
  seconds of ``dance.audio.path``), encoded as MP3 (CBR 128 kbit/s, which every current browser
  plays and seeks exactly) with the ffmpeg binary of ``imageio-ffmpeg`` (or ``ffmpeg`` on
  PATH); when no ffmpeg can encode MP3 it falls back to 16-bit WAV (about ten times larger,
  with a warning). A dance without music plays silently, with a note saying why;
- the metadata (genre, probabilities, prompt, seed, length, the song's file name — never its
  full path), JSON.

The file needs nothing else: no network (its Content-Security-Policy forbids any request), no
fonts, no server; it opens from disk (``file://``) in Chrome, Edge, Firefox and Safari. The
player's audio element is its clock, so seeking keeps the music and the dance together.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import atomic_path
from ..errors import (
    AudioDecodeError,
    EmptyAudioError,
    GCDanceError,
    InputError,
)
from .render import dance_audio

if TYPE_CHECKING:
    from ..dance import Dance

__all__ = ["HTML_SUFFIXES", "html_text", "save_html"]

HTML_SUFFIXES: tuple[str, ...] = (".html",)
"""File suffixes ``save_html`` writes."""

MP3_BITRATE = "128k"
_WAV_MAX_RATE = 48000
_TEMPLATE = "standalone.html"
# Blocks of the template that this module fills (the build filled SCRIPT and STYLE).
_FIELDS = ("TITLE", "META", "GLB", "AUDIO_MIME", "AUDIO")
_MARKER = re.compile(r"<!--GCDANCE:([A-Z_]+)-->")

AudioSource = str | os.PathLike[str] | tuple[np.ndarray, int] | bool | None


def _check_dance(dance: Any) -> Dance:
    from ..dance import Dance

    if not isinstance(dance, Dance):
        raise InputError(f"save_html needs a gcdance.Dance, got {type(dance).__name__}")
    return dance


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


# -------------------------------------------------------------------------------------- music
def _source_seconds(path: Path) -> float | None:
    """Length of an audio file when libsndfile can tell (None when it cannot read it)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, TypeError, ValueError):
        return None
    return info.frames / info.samplerate if info.samplerate else None


def _decoded_frames(path: Path) -> int | None:
    """Samples per channel libsndfile decodes from ``path`` (None when it cannot read it)."""
    import soundfile as sf

    try:
        return int(sf.info(str(path)).frames)
    except (RuntimeError, OSError, TypeError, ValueError):
        return None


def _encode_mp3(exe: str, src: Path, start: float, seconds: float) -> bytes:
    """The segment as MP3, or a GCDanceError saying why ffmpeg could not make it."""
    with tempfile.TemporaryDirectory(prefix="gcdance-html-") as td:
        out = Path(td) / "music.mp3"
        cmd = [
            exe, "-hide_banner", "-nostdin", "-loglevel", "warning", "-y",
            "-ss", f"{start:.6f}", "-t", f"{seconds:.6f}", "-i", str(src),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
            # LAME takes mono or stereo: surround is mixed down, mono stays mono.
            "-af", "aformat=channel_layouts=mono|stereo",
            "-c:a", "libmp3lame", "-b:a", MP3_BITRATE, "-write_xing", "1", "-f", "mp3", str(out),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GCDanceError(f"ffmpeg ({exe}) could not run: {exc}") from None
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip()[-600:]
            raise GCDanceError(f"ffmpeg failed (exit {proc.returncode}): {msg}")
        data = out.read_bytes() if out.is_file() else b""
        # No audio frames (at most a header): the segment held no samples.
        empty = (not data or b"Output file is empty" in proc.stderr
                 or _decoded_frames(out) == 0)
    if empty:
        raise EmptyAudioError(
            f"no audio in {src.name} from {start:.2f} s on; the dance's audio start is past the "
            "end of the song (pass audio_start=, or audio=False for a silent player)"
        )
    return data


def _wav_bytes(src: Path, start: float, seconds: float) -> bytes:
    """The segment as 16-bit PCM WAV (at most 48 kHz, mono or stereo) read with libsndfile."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(src)) as f:
            sr = f.samplerate
            first = round(start * sr)
            if first >= f.frames:
                raise EmptyAudioError(
                    f"audio start {start:.2f} s is past the end of {src.name} "
                    f"({f.frames / sr:.2f} s); pass audio_start=, or audio=False"
                )
            f.seek(first)
            data = f.read(math.ceil(seconds * sr), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        raise AudioDecodeError(f"cannot read the music {src}: {exc}") from None
    return _pcm_wav(data, sr)


def _pcm_wav(data: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    if data.shape[1] > 2:
        data = data.mean(axis=1, keepdims=True)  # surround: a mono mix is what a page needs
    if sr > _WAV_MAX_RATE:
        import soxr

        data = soxr.resample(data, sr, _WAV_MAX_RATE).astype(np.float32)
        sr = _WAV_MAX_RATE
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _array_wav(samples: Any, sr: Any, start: float, seconds: float) -> bytes:
    """(samples, sample_rate) cut to the segment, as WAV bytes."""
    sr = int(sr)
    if sr <= 0:
        raise InputError(f"audio sample rate must be positive, got {sr}")
    arr = np.asarray(samples)
    if arr.ndim == 2 and arr.shape[0] <= 16 < arr.shape[1]:
        arr = arr.T
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] > 16 or arr.size == 0:
        raise InputError(f"audio array must be (samples,) or (samples, channels), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"audio samples must be numbers, got dtype {arr.dtype}")
    i0 = round(start * sr)
    seg = arr[i0:i0 + math.ceil(seconds * sr)]
    if seg.shape[0] == 0:
        raise EmptyAudioError(
            f"audio_start {start:.2f} s is past the end of the audio array "
            f"({arr.shape[0] / sr:.2f} s)"
        )
    return _pcm_wav(np.nan_to_num(seg.astype(np.float32)), sr)


def _music(
    dance: Dance, audio: AudioSource, audio_start: float | None, ffmpeg: str | None
) -> tuple[bytes | None, str, str | None, str | None, float]:
    """(data, mime, file name, note when silent, start) of the music to embed."""
    seconds = dance.duration
    source, start = dance_audio(dance, audio, audio_start, "embed it")
    if source is None:
        note = ("Saved without music: the dance plays silently." if audio is False else
                "This dance was made from audio in memory, so no music was saved with it; "
                "it plays silently.")
        return None, "", None, note, start
    if isinstance(source, tuple):
        wav = _array_wav(source[0], source[1], start, seconds)
        with tempfile.TemporaryDirectory(prefix="gcdance-html-") as td:
            src = Path(td) / "music.wav"
            src.write_bytes(wav)
            data, mime = _compact(src, 0.0, seconds, ffmpeg, fallback=wav)
        return data, mime, None, None, start
    src = source
    total = _source_seconds(src)
    if total is not None and start >= total:
        raise EmptyAudioError(
            f"audio start {start:.2f} s is past the end of {src.name} ({total:.2f} s); pass "
            "audio_start=, or audio=False for a silent player"
        )
    data, mime = _compact(src, start, seconds, ffmpeg, fallback=None)
    return data, mime, src.name, None, start


def _compact(
    src: Path, start: float, seconds: float, ffmpeg: str | None, fallback: bytes | None
) -> tuple[bytes, str]:
    """MP3 when ffmpeg can make it, else WAV (``fallback`` or decoded from ``src``)."""
    from .render import find_ffmpeg

    try:
        return _encode_mp3(find_ffmpeg(ffmpeg), src, start, seconds), "audio/mpeg"
    except EmptyAudioError:
        raise
    except GCDanceError as exc:
        if ffmpeg is not None:  # an ffmpeg the caller chose must work
            raise
        reason = str(exc)
    warnings.warn(
        f"the music is embedded as WAV (about ten times larger than MP3): {reason}",
        RuntimeWarning, stacklevel=2,
    )
    data = fallback if fallback is not None else _wav_bytes(src, start, seconds)
    return data, "audio/wav"


# --------------------------------------------------------------------------------------- page
def _title(dance: Dance, title: str | None) -> str:
    if title is not None:
        if not isinstance(title, str):
            raise InputError(f"title must be a string, got {type(title).__name__}")
        return title
    head = f"{dance.genre} dance" if dance.genre else "Dance"
    if dance.prompt and dance.prompt != dance.genre:
        prompt = dance.prompt if len(dance.prompt) <= 80 else dance.prompt[:79] + "…"
        head += f" \u2014 \u201c{prompt}\u201d"
    return f"{head} \u00b7 gcdance"


def html_text(
    dance: Dance,
    *,
    audio: AudioSource = None,
    audio_start: float | None = None,
    title: str | None = None,
    ffmpeg: str | None = None,
    basename: str = "dance",
) -> str:
    """The self-contained player page of ``dance`` (see the module docstring).

    Args:
        audio: None: the dance's own music (``dance.audio.path``), silent if it has none; a path
            or ``(samples, sample_rate)``: that song (cut from ``audio_start``); False: silent.
        audio_start: seconds into the song where the dance begins (default
            ``dance.audio.start`` or 0).
        title: the page title (default: genre and prompt).
        ffmpeg: an explicit ffmpeg executable for the MP3 (default: imageio-ffmpeg's or PATH's).
        basename: file name (without suffix) the page offers the ``.glb`` download under.
    """
    from .. import __version__
    from ..web import asset_text
    from .gltf import glb_bytes

    dance = _check_dance(dance)
    template = asset_text(_TEMPLATE)
    found = _MARKER.findall(template)
    if sorted(found) != sorted(_FIELDS):
        raise GCDanceError(
            f"the built player template {_TEMPLATE} has blocks {found}, expected one each of "
            f"{list(_FIELDS)}: the web assets are stale; rebuild them (python tools/build_web.py "
            "or pip install .)"
        )
    music, mime, song, note, start = _music(dance, audio, audio_start, ffmpeg)
    meta = {
        "format": "gcdance.html",
        "gcdance_version": __version__,
        "genre": dance.genre,
        "genre_probs": dict(dance.genre_probs),
        "prompt": dance.prompt,
        "seed": dance.seed,
        "fps": dance.fps,
        "frames": dance.num_frames,
        "seconds": dance.duration,
        "audio": None if music is None else {"name": song, "start": start, "mime": mime},
        "audio_note": note,
        "basename": basename,
    }
    values = {
        "TITLE": html.escape(_title(dance, title), quote=False),
        "META": _script_json(meta),
        "GLB": base64.b64encode(glb_bytes(dance)).decode("ascii"),
        "AUDIO_MIME": mime,
        "AUDIO": "" if music is None else base64.b64encode(music).decode("ascii"),
    }
    # One pass: a value can never be mistaken for a block marker.
    return _MARKER.sub(lambda m: values[m.group(1)], template)


def save_html(
    dance: Dance,
    path: str | os.PathLike[str],
    *,
    audio: AudioSource = None,
    audio_start: float | None = None,
    title: str | None = None,
    ffmpeg: str | None = None,
) -> Path:
    """Write ``dance`` as a self-contained ``.html`` player (atomically); returns the path.

    The options are those of :func:`html_text`.
    """
    p = Path(path)
    if p.suffix.lower() not in HTML_SUFFIXES:
        raise InputError(f"cannot write a player page to {p.name!r}: give a .html file name")
    text = html_text(dance, audio=audio, audio_start=audio_start, title=title, ffmpeg=ffmpeg,
                     basename=re.sub(r"[^\w.-]+", "_", p.stem) or "dance")
    with atomic_path(p) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return p
