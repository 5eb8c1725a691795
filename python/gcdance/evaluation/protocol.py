"""The paper's evaluation protocols in one command: test set, generation, rounds and the table.

``python -m gcdance.evaluation.protocol --protocol finedance --data FINEDANCE_ROOT --bundle B``:

1. **Test set.** ``finedance`` (the paper's Table I): the 18 FineDance test songs
   (``gcdance.datasets.finedance.FINEDANCE_TEST``), each cut into ``clips_per_song`` = 15 clips of
   120 frames (4 s at 30 fps), 18 x 15 = 270 clips. The paper says "270 dance clips across 18
   songs" and "T = 120 frames" but not where in a song the clips lie; here their starts are
   evenly spaced from the first to the last full clip of the song (motion and music both
   present), so they do not overlap in any song longer than 60 s. ``aistpp`` (Table II,
   Bailando's setting): every sequence of the AIST++ ``crossmodal_test`` split, its first
   20 s (600 frames at 30 fps; a shorter sequence whole) as one clip, metrics FID_k, FID_g,
   Div_k, Div_g and BAS.
2. **Real clips** ("the corresponding real dances as ground truth"): each clip's real joints
   and the music beats of its song (librosa beat tracking of the whole song, sliced) are written
   to ``OUT/real/<clip>.npz``. For ``aistpp`` the real set is by default Bailando's instead
   (``real_set="all"``, :data:`REAL_SETS`): every AIST++ sequence less the ignore list, whole.
3. **Generation.** ``rounds`` (10) sampling rounds: round r generates every clip from its music
   (``start``/``duration`` of the song) and its genre label as the prompt, with seed
   ``seed + r * n_clips + i``, the bundle's sampling settings (or ``steps``/``guidance``/
   ``eta``) and the raw model output (no beat sync and no foot lock, as in the paper;
   ``beat_sync=True`` / ``foot_lock=True`` to apply them as ``generate`` does by default).
   Dances go to ``OUT/generated/round_XX/<clip>.npz`` (joints, fps, music beats).
   A rerun with the same settings keeps the dances already written (resume); other settings
   in the same ``OUT`` are refused.
4. **Table.** :func:`gcdance.evaluation.evaluate.evaluate` on those folders: mean and standard
   deviation over the rounds of FID_hand, FID_body, FID_k, FID_g, Div, PFC, PBC (ours and
   PopDG's sign) and BAS, written as ``OUT/table.json`` / ``OUT/table.md`` and printed.

What it cannot check by itself: that the numbers match the paper (that needs the FineDance
data, the trained ``paper`` bundle and a GPU); see ``docs/paper_protocol.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..errors import DataFormatError, GCDanceError, InputError
from .evaluate import REFERENCE_COMPAT, add_reference_compat, evaluate, markdown_table

__all__ = [
    "PROTOCOLS",
    "REAL_SETS",
    "ProtocolClip",
    "ProtocolSpec",
    "aistpp_clips",
    "aistpp_ground_truth",
    "finedance_clips",
    "generate_rounds",
    "main",
    "run_protocol",
    "write_real_clips",
]


@dataclass(frozen=True)
class ProtocolSpec:
    """Defaults of one protocol (each can be overridden from the command line)."""

    clip_seconds: float
    clips_per_song: int  # 0: one clip per sequence, from its start
    rounds: int
    columns: tuple[str, ...] | None  # None: every column of the evaluation
    real_set: str = "clips"  # the ground truth: "clips" (the test clips) or "all" (REAL_SETS)


PROTOCOLS: dict[str, ProtocolSpec] = {
    # GCDance Table I: 270 clips of 4 s over the 18 test songs, 10 rounds.
    "finedance": ProtocolSpec(4.0, 15, 10, None),
    # GCDance Table II follows Bailando: AIST++ test split, 20 s, one set of dances.
    # Its ground truth is every AIST++ sequence, whole (Bailando's extract_aist_features.py).
    "aistpp": ProtocolSpec(20.0, 0, 1, ("FID_k", "FID_g", "Div_k", "Div_g", "BAS"), "all"),
}
"""Protocol name -> defaults."""

REAL_SETS = ("clips", "all")
"""The real dances FID compares with: ``clips``, the test clips themselves (the paper's "the
corresponding real dances as ground truth"); ``all`` (AIST++ only), every sequence of the data
set less the ignore list, each whole, as Bailando's ``extract_aist_features.py`` computes its
ground-truth features."""

_BEATS_FPS_NOTE = "music beats are frame indices at the clip's fps, relative to its first frame"


@dataclass(frozen=True)
class ProtocolClip:
    """One test clip: where it comes from and what generates it."""

    name: str  # "<song>@<start frame>"
    song: str
    music: str  # path of the song's audio
    genre: str  # the prompt (the sequence's genre label)
    start: int  # first frame, at fps
    frames: int
    fps: float


@dataclass
class _Song:
    name: str
    joints: np.ndarray  # (T, J, 3)
    music: Path
    genre: str
    fps: float


def _music_frames(path: Path, fps: float) -> int:
    """Whole frames of music at ``fps`` (the clip plan keeps clips inside motion and music)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except RuntimeError as exc:
        raise DataFormatError(f"cannot read the music file {path}: {exc}") from exc
    return math.floor(info.frames / info.samplerate * fps + 1e-6)


def _clip_spans(available: int, frames: int, count: int, song: str) -> list[tuple[int, int]]:
    """(start, frames) of a song's clips: ``count`` evenly spaced full clips, or with
    ``count == 0`` one clip from the start, shortened to the song when it is shorter."""
    if count <= 0 and available >= 3:
        return [(0, min(frames, available))]
    if available < frames:
        raise DataFormatError(
            f"{song}: {available} frames of motion and music, fewer than one clip of {frames}; "
            "remove it from the split or shorten the clips (--clip-seconds)"
        )
    starts = sorted({int(s) for s in np.linspace(0, available - frames, count).round()})
    return [(start, frames) for start in starts]


def _plan(songs: Sequence[_Song], clip_seconds: float | None, clips_per_song: int
          ) -> tuple[list[ProtocolClip], dict[str, np.ndarray]]:
    """Clips of every song and, per clip, its real joints (``clip_seconds=None`` with
    ``clips_per_song=0``: each song whole, as far as motion and music both go)."""
    clips: list[ProtocolClip] = []
    real: dict[str, np.ndarray] = {}
    for song in songs:
        available = min(song.joints.shape[0], _music_frames(song.music, song.fps))
        frames = available if clip_seconds is None else round(clip_seconds * song.fps)
        for start, length in _clip_spans(available, frames, clips_per_song, song.name):
            clip = ProtocolClip(f"{song.name}@{start}", song.name, str(song.music), song.genre,
                                start, length, song.fps)
            clips.append(clip)
            real[clip.name] = song.joints[start : start + length]
    return clips, real


def finedance_clips(root: str | os.PathLike[str], clip_seconds: float = 4.0,
                    clips_per_song: int = 15, split: str = "test"
                    ) -> tuple[list[ProtocolClip], dict[str, np.ndarray]]:
    """The FineDance test clips (module docstring, step 1) and their real joints."""
    from ..datasets.finedance import FineDanceDataset
    from ..motion.layout import FINEDANCE
    from ..motion.skeleton import motion_to_joints

    dataset = FineDanceDataset(root, split, require_music=True)  # type: ignore[arg-type]
    songs = []
    for seq in dataset:
        assert seq.music_path is not None  # require_music
        joints = np.asarray(motion_to_joints(seq.motion.astype(np.float64), FINEDANCE))
        songs.append(_Song(seq.name, joints, seq.music_path, seq.genre, float(seq.fps)))
    return _plan(songs, clip_seconds, clips_per_song)


def _aistpp_ignore(base: Path, ignore_file: str | os.PathLike[str] | None) -> Path | None:
    """The ignore list: the given file, else the AIST++ release's ``ROOT/ignore_list.txt``
    (where Bailando reads it), else ``ROOT/splits/ignore_list.txt``, else none."""
    if ignore_file:
        return Path(ignore_file)
    for path in (base / "ignore_list.txt", base / "splits" / "ignore_list.txt"):
        if path.is_file():
            return path
    return None


def _aistpp_songs(base: Path, split: Path | None, ignore: Path | None,
                  music_dir: str | os.PathLike[str] | None) -> list[_Song]:
    from ..datasets.aistpp import AISTPPDataset
    from ..motion.layout import AISTPP
    from ..motion.skeleton import motion_to_joints

    music = Path(music_dir) if music_dir else base / "all_musics"
    if not music.is_dir():
        raise DataFormatError(f"AIST++ music folder {music} not found: give --music-dir (the "
                              "folder of <music id>.wav, e.g. mBR0.wav)")
    dataset = AISTPPDataset(base, split, ignore=ignore, music_dir=music, strict=True)
    songs = []
    for seq in dataset:
        assert seq.music_path is not None
        joints = np.asarray(motion_to_joints(seq.motion.astype(np.float64), AISTPP))
        songs.append(_Song(seq.name, joints, seq.music_path, seq.genre, float(seq.fps)))
    return songs


def aistpp_clips(root: str | os.PathLike[str], clip_seconds: float = 20.0,
                 clips_per_song: int = 0, split_file: str | os.PathLike[str] | None = None,
                 ignore_file: str | os.PathLike[str] | None = None,
                 music_dir: str | os.PathLike[str] | None = None
                 ) -> tuple[list[ProtocolClip], dict[str, np.ndarray]]:
    """The AIST++ test clips (Bailando's setting: ``crossmodal_test``, the first 20 s).

    Defaults: ``ROOT/splits/crossmodal_test.txt``, the ignore list of :func:`_aistpp_ignore`
    and the music in ``ROOT/all_musics`` (``<music id>.wav``).
    """
    base = Path(root)
    split = Path(split_file) if split_file else base / "splits" / "crossmodal_test.txt"
    if not split.is_file():
        raise DataFormatError(f"AIST++ test split {split} not found: give --split-file (the "
                              "AIST++ API's splits/crossmodal_test.txt)")
    songs = _aistpp_songs(base, split, _aistpp_ignore(base, ignore_file), music_dir)
    return _plan(songs, clip_seconds, clips_per_song)


def aistpp_ground_truth(root: str | os.PathLike[str],
                        ignore_file: str | os.PathLike[str] | None = None,
                        music_dir: str | os.PathLike[str] | None = None
                        ) -> tuple[list[ProtocolClip], dict[str, np.ndarray]]:
    """Bailando's real set: every sequence in ``ROOT/motions`` less the ignore list, each
    whole (as far as its music goes), one clip per sequence."""
    base = Path(root)
    ignore = _aistpp_ignore(base, ignore_file)
    if ignore is None:
        raise DataFormatError(f"no AIST++ ignore list under {base} (ignore_list.txt): Bailando's "
                              "ground truth leaves those sequences out; give --ignore-file, or "
                              "--real clips to compare with the test clips only")
    return _plan(_aistpp_songs(base, None, ignore, music_dir), None, 0)


def _song_beats(*clip_sets: Sequence[ProtocolClip], log: Callable[[str], None]
                ) -> list[dict[str, np.ndarray]]:
    """Music beats (frame indices) of every clip of each set, one dict per set: each music file
    beat-tracked once over all the sets (AIST++ sequences share their music, and the test
    clips and the real set share their songs), sliced."""
    ends: dict[tuple[str, float], int] = {}
    for clip in (c for clips in clip_sets for c in clips):
        key = (clip.music, clip.fps)
        ends[key] = max(ends.get(key, 0), clip.start + clip.frames)
    by_music: dict[tuple[str, float], np.ndarray] = {}
    out: list[dict[str, np.ndarray]] = []
    for clips in clip_sets:
        sliced = {}
        for clip in clips:
            key = (clip.music, clip.fps)
            if key not in by_music:
                by_music[key] = metrics.music_beats_from_audio(
                    clip.music, fps=clip.fps, n_frames=ends[key]).astype(np.float64)
                log(f"beats: {Path(clip.music).name} ({by_music[key].size} beats)")
            beats = by_music[key]
            inside = beats[(beats >= clip.start) & (beats < clip.start + clip.frames)]
            sliced[clip.name] = inside - clip.start
        out.append(sliced)
    return out


def write_real_clips(folder: Path, clips: Sequence[ProtocolClip], real: dict[str, np.ndarray],
                     beats: dict[str, np.ndarray]) -> None:
    """``folder/<clip>.npz`` with the real joints, fps and music beats of every clip; the
    folder holds these clips only (a real set written there before is removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.npz"):
        old.unlink()
    for clip in clips:
        np.savez(folder / f"{clip.name}.npz", joints=real[clip.name].astype(np.float32),
                 fps=np.float64(clip.fps), music_beats=beats[clip.name])


def generate_rounds(generator: Any, clips: Sequence[ProtocolClip], folder: Path, *,
                    rounds: int, seed: int = 0, beats: dict[str, np.ndarray] | None = None,
                    steps: int | None = None, guidance: float | None = None,
                    eta: float | None = None, foot_lock: bool = False,
                    beat_sync: bool = False,
                    log: Callable[[str], None] = lambda _m: None) -> int:
    """Generate every clip ``rounds`` times into ``folder/round_XX/<clip>.npz``; returns how
    many were generated (files already there are kept: an interrupted run resumes)."""
    made = 0
    for r in range(rounds):
        out = folder / f"round_{r:02d}"
        out.mkdir(parents=True, exist_ok=True)
        for i, clip in enumerate(clips):
            path = out / f"{clip.name}.npz"
            if path.is_file():
                continue
            dance = generator.generate(
                clip.music, clip.genre, seed=seed + r * len(clips) + i, steps=steps,
                guidance=guidance, eta=eta, start=clip.start / clip.fps,
                duration=clip.frames / clip.fps, beat_sync=beat_sync, foot_lock=foot_lock)
            joints = np.asarray(dance.joints())
            if joints.shape[0] < clip.frames:
                raise DataFormatError(f"{clip.name}: the model gave {joints.shape[0]} frames "
                                      f"for a clip of {clip.frames}")
            arrays: dict[str, Any] = {"joints": joints[: clip.frames],
                                      "fps": np.float64(clip.fps)}
            if beats is not None:
                arrays["music_beats"] = beats[clip.name]
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)  # a killed run never leaves a half-written dance
            made += 1
        log(f"round {r + 1}/{rounds}: {len(clips)} clips in {out}")
    return made


def _check_settings(out: Path, settings: dict[str, Any], force: bool) -> None:
    """One ``OUT`` holds one experiment: refuse to mix dances made with other settings."""
    path = out / "protocol.json"
    if path.is_file() and not force:
        old = json.loads(path.read_text())
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise InputError(f"{out} holds a run with other settings ({', '.join(diff)}); use "
                             "another --out, or --force to start over there")
    if force:
        import shutil

        shutil.rmtree(out / "generated", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")


def run_protocol(protocol: str, data: str | os.PathLike[str], bundle: Any,
                 out: str | os.PathLike[str], *, rounds: int | None = None,
                 clip_seconds: float | None = None, clips_per_song: int | None = None,
                 seed: int = 0, steps: int | None = None, guidance: float | None = None,
                 eta: float | None = None, foot_lock: bool = False,
                 beat_sync: bool = False, reference_compat: str = "off",
                 real_set: str | None = None,
                 provider: str = "auto",
                 split_file: str | os.PathLike[str] | None = None,
                 ignore_file: str | os.PathLike[str] | None = None,
                 music_dir: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, force: bool = False,
                 name: str = "GCDance", generator: Any = None,
                 log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """The whole protocol (module docstring); returns :func:`evaluate`'s result.

    ``bundle`` is a bundle folder (or None for the packaged model); ``generator`` an already
    built :class:`gcdance.Generator` (then ``bundle`` and ``provider`` are not used).
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if reference_compat not in REFERENCE_COMPAT:
        raise InputError(f"reference_compat must be one of {', '.join(REFERENCE_COMPAT)}")
    spec = PROTOCOLS[protocol]
    real_set = spec.real_set if real_set is None else real_set
    if real_set not in REAL_SETS or (real_set == "all" and protocol != "aistpp"):
        raise InputError(f"real_set must be 'clips', or 'all' with aistpp; got {real_set!r}")
    rounds = spec.rounds if rounds is None else rounds
    clip_seconds = spec.clip_seconds if clip_seconds is None else clip_seconds
    per_song = spec.clips_per_song if clips_per_song is None else clips_per_song
    if rounds < 1 or clip_seconds <= 0 or per_song < 0:
        raise InputError("rounds must be >= 1, clip_seconds > 0 and clips_per_song >= 0")
    out_dir = Path(out)
    if protocol == "finedance":
        clips, real = finedance_clips(data, clip_seconds, per_song)
    else:
        clips, real = aistpp_clips(data, clip_seconds, per_song, split_file, ignore_file,
                                   music_dir)
    real_clips = clips
    if real_set == "all":
        real_clips, real = aistpp_ground_truth(data, ignore_file, music_dir)
        log(f"ground truth: {len(real_clips)} whole sequences")
    log(f"{protocol}: {len(clips)} clips of {clip_seconds:g} s from "
        f"{len({c.song for c in clips})} songs, {rounds} round(s)")
    if generator is None:
        from ..engine.generator import Generator

        generator = Generator(bundle, provider=provider)
    settings = {
        "protocol": protocol, "data": str(Path(data).resolve()),
        "bundle": str(Path(bundle).resolve()) if isinstance(bundle, (str, os.PathLike))
        else repr(bundle), "clips": [asdict(c) for c in clips], "rounds": rounds,
        "seed": seed, "steps": steps, "guidance": guidance, "eta": eta, "foot_lock": foot_lock,
    }  # what the generated dances depend on (the real set does not: real/ is rewritten)
    if hasattr(generator, "_used"):  # what ran, the bundle's defaults resolved: a re-export shows
        s = generator.bundle.sampling
        used = generator._used(guidance, eta, None, beat_sync=beat_sync, foot_lock=foot_lock)
        settings["sampling"] = {"sampler": used["sampler"], "timesteps": s.timesteps,
                                "steps": s.steps if steps is None else steps,
                                "guidance": used["guidance"], "eta": used["eta"]}
    if beat_sync:  # only when on: runs from before the option resume
        settings["beat_sync"] = True
    _check_settings(out_dir, settings, force)
    beats, real_beats = _song_beats(clips, real_clips, log=log)
    write_real_clips(out_dir / "real", real_clips, real, real_beats)
    generate_rounds(generator, clips, out_dir / "generated", rounds=rounds, seed=seed,
                    beats=beats, steps=steps, guidance=guidance, eta=eta,
                    foot_lock=foot_lock, beat_sync=beat_sync, log=log)
    kinetic, geometric = REFERENCE_COMPAT[reference_compat]
    result = evaluate(
        out_dir / "generated", real=out_dir / "real", name=name, fps=clips[0].fps,
        reference_compat=kinetic, reference_geometric=geometric,
        clip_frames=0,  # the real files are one clip each: kept whole
        rounds=rounds, seed=seed, cache_dir=cache_dir, columns=spec.columns, log=log)
    result["protocol"] = {"name": protocol, "n_clips": len(clips), "clip_seconds": clip_seconds,
                          "clips_per_song": per_song, "foot_lock": foot_lock,
                          "beat_sync": beat_sync,
                          "real_set": real_set, "n_real": len(real_clips),
                          "beats": _BEATS_FPS_NOTE}
    (out_dir / "table.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    (out_dir / "table.md").write_text(markdown_table(result))
    return result


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gcdance.evaluation.protocol",
        description="The paper's evaluation: cut the test songs into the paper's clips, "
        "generate them for several rounds with a bundle and print Table I (finedance) or "
        "Table II (aistpp, Bailando's setting) as mean ± std over rounds.")
    p.add_argument("--protocol", default="finedance", choices=tuple(PROTOCOLS))
    p.add_argument("--data", required=True,
                   help="FineDance root (motion/, music_wav/, label_json/) or AIST++ root "
                   "(motions/, splits/)")
    p.add_argument("--bundle", help="model bundle folder (default: the packaged model)")
    p.add_argument("-o", "--out", default="paper_eval",
                   help="output folder: real/, generated/round_XX/, table.json, table.md")
    p.add_argument("--rounds", type=int, help="sampling rounds (finedance 10, aistpp 1)")
    p.add_argument("--clip-seconds", type=float, help="clip length (finedance 4, aistpp 20)")
    p.add_argument("--clips-per-song", type=int,
                   help="clips per song (finedance 15; 0 = one from the start, aistpp)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="sampling steps (default: the bundle's)")
    p.add_argument("--guidance", type=float, help="guidance weight (default: the bundle's)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the bundle's)")
    p.add_argument("--foot-lock", action="store_true",
                   help="apply the foot lock (the paper evaluates the raw model output)")
    p.add_argument("--beat-sync", action="store_true",
                   help="apply the beat sync (the paper evaluates the raw model output)")
    p.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda", "tensorrt"))
    p.add_argument("--split-file", help="AIST++: test split (ROOT/splits/crossmodal_test.txt)")
    p.add_argument("--ignore-file", help="AIST++: ignore list (ROOT/ignore_list.txt or "
                   "ROOT/splits/ignore_list.txt)")
    p.add_argument("--real", choices=REAL_SETS, dest="real_set",
                   help="ground truth: the test clips (finedance's default) or every sequence "
                   "whole, less the ignore list (aistpp's default, as Bailando)")
    p.add_argument("--music-dir", help="AIST++: folder of <music id>.wav (ROOT/all_musics)")
    p.add_argument("--name", default="GCDance", help="method name in the table")
    add_reference_compat(p)
    p.add_argument("--cache-dir", help="real-feature cache (default: none, recomputed)")
    p.add_argument("--force", action="store_true",
                   help="start over in --out (its generated dances are deleted)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit status (0 ok, 2 bad input or data)."""
    args = _build_parser().parse_args(argv)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    try:
        result = run_protocol(
            args.protocol, args.data, args.bundle, args.out, rounds=args.rounds,
            clip_seconds=args.clip_seconds, clips_per_song=args.clips_per_song,
            seed=args.seed, steps=args.steps, guidance=args.guidance, eta=args.eta,
            foot_lock=args.foot_lock, beat_sync=args.beat_sync,
            reference_compat=args.reference_compat,
            real_set=args.real_set, provider=args.provider, split_file=args.split_file,
            ignore_file=args.ignore_file,
            music_dir=args.music_dir, cache_dir=args.cache_dir, force=args.force,
            name=args.name, log=log)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
