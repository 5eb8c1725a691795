"""Corpus writer: genres x music -> a FineDance-format directory (docs/spec.md section 1).

Layout written under ``out``::

    motion/NNN.npy       (T, 315) float32: root translation + 52 x 6D, 30 fps, Y-up, metres
    music_wav/NNN.wav    the music of the file (16-bit PCM mono, ``sample_rate`` Hz)
    label_json/NNN.json  {"style1": family, "style2": genre, ... "beats": beat times (s)}
    corpus.json          manifest: settings, genres, tracks (source, licence, tempo, split),
                         files (genre, split, segments, seed)
    README.md            the same in prose, with the licences

File names follow FineDance's split so that ``FineDanceDataset(root, "train" | "test")`` gives
exactly the train / held-out-track split here: files made from held-out tracks take names of
FineDance's test list, the others names of its training list. Each genre gets
``seconds_per_genre`` seconds: 80 % from training tracks spread over up to
``183 // n_genres`` files, 20 % from held-out tracks in ``18 // n_genres`` file(s). A file's
music is a medley of consecutive pool tracks cut on beats (so the pulse runs on across the
joins), starting at a seeded track and beat.

Everything random derives from ``numpy.random.SeedSequence([seed, genre_id, file_index])``:
the same seed, settings and track files give byte-identical output.
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gcdance._atomic import atomic_path
from gcdance.conditioning.genres import FINEDANCE_GENRES
from gcdance.datasets.finedance import FINEDANCE_FPS, FINEDANCE_TEST, finedance_split
from gcdance.errors import InputError
from gcdance.motion.rotation import matrix_to_rotation_6d

from .music import (
    CATALOGUE_SOURCES,
    Track,
    TrackAudio,
    discover_tracks,
    load_track,
    split_tracks,
    user_track,
)
from .sequencer import pulse_grid, sequence
from .synth import synthesize
from .vocab import style_for
from .vocab.base import GenreStyle

__all__ = ["CorpusFile", "dance_for_music", "generate_corpus", "missing_catalogue_sources",
           "plan_files", "select_tracks"]

GENERATOR_VERSION = 1
TEST_FRACTION = 0.2
MIN_SECONDS_PER_GENRE = 10.0
_FADE_SECONDS = 0.01
_DATA_DIRS = ("motion", "music_wav", "label_json")


@dataclass(frozen=True)
class CorpusFile:
    """One planned file: FineDance ``name``, genre, split, target seconds, index in genre."""

    name: str
    genre: str
    split: str
    seconds: float
    index: int


def plan_files(genres: list[str], seconds_per_genre: float) -> list[CorpusFile]:
    """Assign FineDance file names, splits and durations (see the module docstring)."""
    if not seconds_per_genre >= MIN_SECONDS_PER_GENRE:
        raise InputError(
            f"seconds_per_genre must be >= {MIN_SECONDS_PER_GENRE:g} (each genre gets a "
            f"training file and a held-out file of {TEST_FRACTION:.0%} of it), got "
            f"{seconds_per_genre}"
        )
    train_names = list(finedance_split("train"))
    test_names = list(FINEDANCE_TEST)
    g = len(genres)
    if g == 0 or g > len(test_names):
        raise InputError(f"choose 1..{len(test_names)} genres, got {g}")
    max_train, max_test = len(train_names) // g, len(test_names) // g
    test_s = seconds_per_genre * TEST_FRACTION
    train_s = seconds_per_genre - test_s
    n_train = max(1, min(max_train, math.floor(train_s / 60.0) or 1))
    n_test = max(1, min(max_test, math.floor(test_s / 120.0) or 1))
    files = []
    for gi, genre in enumerate(genres):
        for k in range(n_train):
            files.append(CorpusFile(train_names[gi * n_train + k], genre, "train",
                                    train_s / n_train, k))
        for k in range(n_test):
            files.append(CorpusFile(test_names[gi * n_test + k], genre, "test",
                                    test_s / n_test, n_train + k))
    return files


def _medley(
    pool: list[TrackAudio], seconds: float, rng: np.random.Generator, sr: int
) -> tuple[np.ndarray, np.ndarray, list[dict[str, object]]]:
    """Audio, beat times (s) and segment list of ~``seconds`` of music cut on beats."""
    order = list(range(len(pool)))
    first = int(rng.integers(len(pool)))
    order = order[first:] + order[:first]
    chunks: list[np.ndarray] = []
    beats: list[np.ndarray] = []
    segments: list[dict[str, object]] = []
    total = 0.0
    fade = max(1, int(_FADE_SECONDS * sr))
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    i = 0
    while total < seconds - 1e-6:
        ta = pool[order[i % len(order)]]
        b = ta.beats[ta.beats >= 0.05]
        if b.size < 3:
            i += 1
            if i > 4 * len(pool):
                raise InputError("no track with enough beats in the pool")
            continue
        b0 = int(rng.integers(0, max(1, b.size // 2))) if i == 0 else 0
        need = seconds - total
        last = b0 + 1
        while last < b.size - 1 and b[last] - b[b0] < need:
            last += 1
        start, end = float(b[b0]), float(b[last])
        a0, a1 = round(start * sr), round(end * sr)
        seg = ta.samples[a0:a1].copy()
        seg[:fade] *= ramp[: seg[:fade].size]
        seg[-fade:] *= ramp[::-1][-seg[-fade:].size:]
        chunks.append(seg)
        beats.append(b[b0:last] - start + total)
        segments.append({"track": ta.track.id, "start": round(start, 4), "end": round(end, 4)})
        total += end - start
        i += 1
    audio = np.concatenate(chunks)
    bt = np.concatenate(beats)
    return audio, np.append(bt, total), segments


def dance_for_music(
    beats: np.ndarray, seconds: float, style: GenreStyle, rng: np.random.Generator,
    fps: float = FINEDANCE_FPS,
) -> tuple[np.ndarray, dict[str, object]]:
    """FineDance raw motion ``(T, 315)`` float32 for beats (s) over ``seconds`` of music, and
    facts about it (pulse factor, phrases, planted-foot masks, relevé)."""
    n = math.floor(seconds * fps)
    if n < 2:
        raise InputError(f"music of {seconds:.3f} s is too short for a dance")
    tl = sequence(beats, seconds, style, rng)
    rot, trans, planted, rise = synthesize(tl, style, n, fps)
    raw = np.concatenate(
        [trans, matrix_to_rotation_6d(rot).reshape(n, -1)], axis=1
    ).astype(np.float32)
    _, factor = pulse_grid(beats, style)
    info = {"pulse_factor": factor, "phrases": tl.phrases, "planted": planted,
            "rise": rise, "pulses": tl.pulses}
    return raw, info


_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff")


def _is_file_spec(spec: str) -> bool:
    """A path (``PATH`` / ``PATH@BPM``) rather than a catalogue id pattern."""
    path = spec.rsplit("@", 1)[0] if "@" in Path(spec).name else spec
    return Path(path).is_file() or Path(path).suffix.lower() in _AUDIO_SUFFIXES


def select_tracks(patterns: list[str] | None) -> list[Track]:
    """Catalogue tracks matching ``patterns`` (ids or shell patterns; all when None), plus
    user audio files given as ``PATH`` or ``PATH@BPM``."""
    if not patterns:
        return discover_tracks()
    files = [user_track(p) for p in patterns if _is_file_spec(p)]
    rest = [p for p in patterns if not _is_file_spec(p)]
    chosen: list[Track] = []
    if rest:
        catalogue = discover_tracks()
        chosen = [t for t in catalogue
                  if any(fnmatch.fnmatch(t.id, p) or t.id.endswith(p) for p in rest)]
        if not chosen:
            raise InputError(
                f"--tracks {rest} matches none of {len(catalogue)} tracks (ids look like "
                f"{catalogue[0].id!r}; shell-style patterns and audio file paths are accepted)"
            )
    ids = [t.id for t in files + chosen]
    if len(set(ids)) != len(ids):
        raise InputError(f"two tracks share an id (file stems must differ): {sorted(ids)}")
    return sorted(files + chosen, key=lambda t: t.id)


def missing_catalogue_sources(tracks: list[Track]) -> list[tuple[str, str]]:
    """``(source, how to install it)`` for each of the catalogue's sources (the default
    corpus's music) that has no track among ``tracks``."""
    have = {t.id.split("/", 1)[0] for t in tracks}
    return [(name, fix) for prefix, name, fix in CATALOGUE_SOURCES if prefix not in have]


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")


def _write_json(path: Path, data: object, indent: int | None = 1) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")


def generate_corpus(
    out: str | Path,
    seconds_per_genre: float = 600.0,
    seed: int = 0,
    *,
    tracks: list[str] | None = None,
    genres: list[str] | None = None,
    sample_rate: int = 22050,
    overwrite: bool = False,
    log: Callable[[str], object] = print,
) -> dict[str, object]:
    """Write the corpus to ``out`` and return its manifest (see the module docstring)."""
    t_start = time.perf_counter()
    root = Path(out)
    if (root / "corpus.json").exists() and not overwrite:
        raise InputError(f"{root} already holds a corpus (corpus.json); pass overwrite=True "
                         "(--overwrite) or choose another folder")
    if not (root / "corpus.json").exists() and any(
        any((root / d).glob("*")) for d in _DATA_DIRS if (root / d).is_dir()
    ):
        raise InputError(f"{root} holds FineDance-style files that are not a generated corpus "
                         "(no corpus.json); choose an empty or new folder")
    genre_list = list(genres) if genres else list(FINEDANCE_GENRES)
    styles = [style_for(g) for g in genre_list]
    all_tracks = select_tracks(tracks)
    missing = missing_catalogue_sources(all_tracks) if not tracks else []
    for source, fix in missing:
        # Not an error (the corpus is still a corpus), but not the default one either: its
        # held-out split, and every number measured on it, differ from the model card's.
        log(f"warning: no track from {source} ({fix}): this corpus differs from the default "
            "one that the default model was trained and evaluated on, so numbers measured on "
            "it do not compare with the model card's or the README's")
    log(f"decoding {len(all_tracks)} tracks and tracking beats ...")
    audio = [load_track(t, sample_rate) for t in all_tracks]
    split = split_tracks([a.track for a in audio], {a.track.id: a.track.tempo for a in audio})
    pools = {s: [a for a in audio if split[a.track.id] == s] for s in ("train", "test")}
    if not pools["test"]:  # a single track: it has to serve both (said in the manifest)
        pools["test"] = pools["train"]
    if not pools["train"]:
        pools["train"] = pools["test"]
    plan = plan_files(genre_list, seconds_per_genre)
    keep = {cf.name for cf in plan}
    for d, suffix in zip(_DATA_DIRS, (".npy", ".wav", ".json"), strict=True):
        (root / d).mkdir(parents=True, exist_ok=True)
        for old in (root / d).glob(f"*{suffix}"):  # files of an earlier, larger corpus
            if old.stem not in keep:
                old.unlink()
    files_meta = []
    for cf in plan:
        style = styles[genre_list.index(cf.genre)]
        gid = FINEDANCE_GENRES.index(cf.genre)
        ss = np.random.SeedSequence([seed, gid, cf.index])
        rng = np.random.default_rng(ss)
        music, beats, segments = _medley(pools[cf.split], cf.seconds, rng, sample_rate)
        seconds = music.size / sample_rate
        raw, info = dance_for_music(beats, seconds, style, rng)
        n = raw.shape[0]
        music = music[: round(n / FINEDANCE_FPS * sample_rate)]
        np.save(root / "motion" / f"{cf.name}.npy", raw)
        _write_wav(root / "music_wav" / f"{cf.name}.wav", music, sample_rate)
        label = {
            "name": cf.name, "style1": style.family, "style2": style.name,
            "generator": "gcdance choreography", "split": cf.split,
            "seed": [seed, gid, cf.index], "pulse_factor": info["pulse_factor"],
            "beats": [round(float(b), 4) for b in beats if b < n / FINEDANCE_FPS],
            "segments": segments,
        }
        _write_json(root / "label_json" / f"{cf.name}.json", label, indent=None)
        files_meta.append({
            "name": cf.name, "genre": style.name, "style1": style.family, "split": cf.split,
            "frames": n, "seconds": round(n / FINEDANCE_FPS, 3), "segments": segments,
            "pulse_factor": info["pulse_factor"], "seed": [seed, gid, cf.index],
        })
        log(f"  {cf.name} {style.name:13s} {cf.split:5s} {n / FINEDANCE_FPS:6.1f} s "
            f"({len(segments)} segment(s))")
    manifest = {
        "format": "FineDance (docs/spec.md section 1): motion/NNN.npy (T, 315), "
                  "music_wav/NNN.wav, label_json/NNN.json",
        "generator": "python -m choreography", "version": GENERATOR_VERSION,
        "seed": seed, "seconds_per_genre": seconds_per_genre, "sample_rate": sample_rate,
        "fps": FINEDANCE_FPS,
        "genres": [{"id": FINEDANCE_GENRES.index(s.name), "name": s.name, "style1": s.family,
                    "description": s.description, "pulse_bpm": s.pulse_bpm,
                    "phrases": [p.name for p in s.phrases]} for s in styles],
        "tracks": [{**a.track.to_dict(), "split": split[a.track.id], "grid": a.grid,
                    "seconds": round(a.seconds, 3), "beats": int(a.beats.size)}
                   for a in audio],
        "split": {s: sorted(t for t, v in split.items() if v == s) for s in ("train", "test")},
        "files": files_meta,
    }
    _write_json(root / "corpus.json", manifest)
    (root / "README.md").write_text(_readme(manifest), encoding="utf-8")
    total = sum(f["seconds"] for f in files_meta)
    log(f"wrote {len(files_meta)} files ({total / 60:.1f} min of dance) to {root} in "
        f"{time.perf_counter() - t_start:.1f} s")
    return manifest


def _readme(m: dict) -> str:
    lines = [
        "# gcdance procedural choreography corpus", "",
        "Generated by `python -m choreography` (gcdance, issue 7.1) with seed "
        f"{m['seed']}, {m['seconds_per_genre']} s per genre, music at {m['sample_rate']} Hz. "
        "FineDance format (docs/spec.md section 1): `motion/NNN.npy` (T, 315) at 30 fps, "
        "`music_wav/NNN.wav`, `label_json/NNN.json` (style1 = family, style2 = genre). "
        "Files made from held-out tracks carry names of FineDance's test list, so "
        "`FineDanceDataset(root, 'test')` is the held-out-music split.", "",
        "Dances are synthesized procedurally (no motion capture): genre vocabularies of key "
        "poses, hand shapes and footwork laid on the music's beats, planted feet solved with "
        "two-bone IK. See `choreography/` for the vocabularies.", "",
        "## Music and licences", "",
        "| track | split | tempo (bpm) | source | licence | url |", "|---|---|---|---|---|---|",
    ]
    for t in m["tracks"]:
        lines.append(f"| {t['id']} | {t['split']} | {t['tempo']:g} ({t['tempo_source']}) | "
                     f"{t['source']} | {t['licence']} | {t['url']} |")
    lines += ["", "immich-memories-music: MIT, generated with ACE-Step 1.5 by its authors (no "
              "third-party recordings). Sonic Pi samples: CC0 1.0 (public domain), from "
              "freesound.org via Debian's sonic-pi-samples package.", "",
              "The motion data is generated by gcdance and shares the project's licence.", "",
              "## Genres", ""]
    for g in m["genres"]:
        lines.append(f"- **{g['name']}** ({g['style1']}): {g['description']}")
    n_train = sum(1 for f in m["files"] if f["split"] == "train")
    lines += ["", f"## Files: {n_train} train, {len(m['files']) - n_train} held-out", ""]
    return "\n".join(lines) + "\n"
