"""``gcdance.Generator``: music + prompt -> ``Dance``, sampled by the C++ engine (docs/api.md).

Pipeline of :meth:`Generator.generate`: audio -> per-frame music features (the bundle's feature
configuration, checked) -> genre from the prompt (exact name/alias, else the bundle's classifier
P; a prompt schedule gives one per window) -> its control embedding C_E -> the engine's sampling
loop over 4 s windows (DDIM or DPM-Solver++, guidance, root anchoring, window handover,
stitching; ``gcdance._engine``) -> unnormalized motion -> turn limit (a heading flip of the
model's root spread into a fast turn, :mod:`gcdance.motion.turn_limit`, always) -> beat sync (a
local time warp that slows the dance into every beat, :mod:`gcdance.motion.beat_sync`, on by
default) -> foot contact clean-up (:mod:`gcdance.motion.foot_lock`, on by default) ->
``Dance``.

Threading: one ``Generator`` may be used from several threads at once. The model's sessions
(weights) are shared; each call borrows an engine state (buffers) from a pool that holds one per
call running at once. The GIL is released while the engine samples.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import masks as masks_mod
from ..dance import AudioInfo, Dance
from ..errors import InputError, ProviderError
from ..motion.turn_limit import limit_turns
from ..sampling.schedule import SAMPLERS, TABLE_KEYS, UNNAMED_GRID
from ..sampling.stitching import plan_windows
from .bundle import Bundle, load_bundle
from .engine import available_providers, native

__all__ = ["PROVIDERS", "Generator", "Prompt", "check_schedule", "engine_config",
           "schedule_array"]

Prompt = str | Sequence[tuple[float, str]]
"""A prompt (a genre name or free text), or a schedule ``[(start_seconds, text), ...]``."""

Progress = Callable[[int, int], Any]
"""``progress(step, steps)`` after every DDIM step; returning ``False`` cancels."""

PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")


def check_schedule(prompt: object) -> list[tuple[float, str]]:
    """A prompt or a prompt schedule as ``[(start_seconds, text), ...]``, checked: a schedule is
    a non-empty list of ``(seconds, text)`` pairs, the first at 0, times finite and strictly
    increasing, every text non-empty (``InputError`` naming the entry otherwise)."""
    if isinstance(prompt, str):
        entries: list[Any] = [(0.0, prompt)]
    elif isinstance(prompt, Sequence) and not isinstance(prompt, (bytes, bytearray)):
        entries = list(prompt)
        if not entries:
            raise InputError("the prompt schedule is empty; give a prompt, or pairs "
                             "[(0, 'jazz'), (24.0, 'breaking'), ...]")
    else:
        raise InputError(f"prompt must be a text or a schedule [(start_seconds, text), ...], got "
                         f"{type(prompt).__name__}")
    out: list[tuple[float, str]] = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2):
            raise InputError(f"prompt schedule entry {i} is {entry!r}; each entry is a pair "
                             "(start_seconds, text)")
        t, text = entry
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) \
                or not np.isfinite(t) or t < 0:
            raise InputError(f"prompt schedule entry {i} starts at {t!r}; start times are "
                             "seconds >= 0")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"prompt schedule entry {i} (at {float(t):g} s) has an empty "
                             "text; give a genre name or a description")
        if i == 0 and float(t) != 0.0:
            raise InputError(f"the prompt schedule starts at {float(t):g} s; its first entry "
                             "must start at 0 (what the dance is before the first change)")
        if out and float(t) <= out[-1][0]:
            what = "twice" if float(t) == out[-1][0] else "out of order"
            raise InputError(f"prompt schedule entry {i} starts at {float(t):g} s, {what} "
                             f"(the one before starts at {out[-1][0]:g} s); sort the entries by "
                             "start time, each start once")
        out.append((float(t), text))
    return out


def engine_config(bundle: Bundle, denoiser: str | os.PathLike[str] | None = None) -> Any:
    """The engine's ``ModelConfig`` for a bundle: its graphs and what the engine reads of its
    manifest. ``denoiser`` replaces the bundle's denoiser graph (the int8 one, for example)."""
    cfg = native().ModelConfig()
    cfg.dim, cfg.music_dim, cfg.text_dim = bundle.dim, bundle.music_dim, bundle.text_dim
    cfg.cache_dim = bundle.graphs.cache_dim
    cfg.window, cfg.hop = bundle.window, bundle.hop
    cfg.anchor_dims = [int(d) for d in bundle.anchor_dims]
    cfg.anchor_zero = [float(v) for v in np.asarray(bundle.anchor_zero, np.float32)]
    cfg.norm_center = [float(v) for v in bundle.normalizer.center]
    cfg.norm_half_range = [float(v) for v in bundle.normalizer.half_range]
    cfg.rot_start = bundle.layout.rotations.start
    cfg.num_joints = bundle.layout.num_joints
    cfg.schedule_columns = list(TABLE_KEYS)  # the loader checked the sampler step reads these
    cfg.condition_path = str(bundle.graphs.condition)
    cfg.denoiser_path = str(denoiser if denoiser is not None else bundle.graphs.denoiser)
    cfg.sampler_path = str(bundle.graphs.sampler)
    cfg.upload_path = str(bundle.graphs.upload)
    return cfg


def schedule_array(table: dict[str, np.ndarray]) -> np.ndarray:
    """A schedule table (``gcdance.sampling.schedule``) as the engine's ``(steps, columns)`` float32
    rows, columns in :data:`gcdance.sampling.schedule.TABLE_KEYS` order."""
    return np.ascontiguousarray(np.stack([np.asarray(table[k], np.float32) for k in TABLE_KEYS],
                                         axis=1))


def _check_flag(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**64:  # the engine's generator takes a 64-bit seed
        raise InputError(f"seed must be an integer in 0..2**64 - 1, got {seed!r}")


def _check_provider(provider: object) -> str:
    name = provider.lower() if isinstance(provider, str) else None
    if name not in PROVIDERS:
        raise InputError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    return name


def _pick_provider(name: str) -> str:
    """``auto`` resolved, and the provider checked against this ONNX Runtime's."""
    available = available_providers()
    if name == "auto":
        return "cuda" if "cuda" in available else "cpu"
    if name in ("cuda", "tensorrt") and name not in available:
        raise ProviderError(f"provider {name!r} is not in this ONNX Runtime (available: "
                            f"{', '.join(available)}); install onnxruntime-gpu instead of "
                            "onnxruntime, or use provider='cpu'")
    return name


class Generator:
    """Generates dances with a model bundle (``bundle=None``: the bundled default model).

    Args:
        bundle: a model bundle directory (``python -m export.bundle``), a loaded ``Bundle``, or
            None.
        provider: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"tensorrt"``.
        threads: ONNX Runtime intra-op threads for the denoiser (None: one per physical core).
        precision: ``"fp32"`` (default) or ``"int8"``: the denoiser's weights quantized to
            int8 (:mod:`gcdance.engine.quantize`; CPU only, faster, slightly different output).
        device_id: the GPU (CUDA ordinal) every session and buffer of the model lives on.
        provider_options: extra CUDA/TensorRT provider options (e.g. ``use_tf32``). TensorRT
            starts from :func:`gcdance.engine.tensorrt.provider_options` (FP16, engine cache, a
            profile of 1 to 16 windows); given options replace those.

    Every argument is checked here, before the engine starts.
    """

    def __init__(self, bundle: str | os.PathLike[str] | Bundle | None = None,
                 provider: str = "auto", *, threads: int | None = None,
                 precision: str = "fp32", device_id: int = 0,
                 provider_options: dict[str, str] | None = None) -> None:
        from .quantize import PRECISIONS, int8_graph

        provider = _check_provider(provider)
        if threads is not None and (isinstance(threads, bool)
                                    or not isinstance(threads, (int, np.integer)) or threads < 1):
            raise InputError(f"threads must be a positive integer or None (one per physical "
                             f"core), got {threads!r}")
        if isinstance(device_id, bool) or not isinstance(device_id, (int, np.integer)) \
                or device_id < 0:
            raise InputError(f"device_id must be a GPU ordinal >= 0, got {device_id!r}")
        self.precision = str(precision).lower() if isinstance(precision, str) else precision
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}: use one of "
                             f"{', '.join(PRECISIONS)}")
        if provider_options is not None and not isinstance(provider_options, dict):
            raise InputError(f"provider_options must be a dict of strings, got "
                             f"{type(provider_options).__name__}")
        options = {str(k): str(v) for k, v in (provider_options or {}).items()}
        if "device_id" in options:  # (the engine refuses it too; here before any work)
            raise InputError(f"provider_options has device_id={options['device_id']!r}: pass "
                             "the GPU as Generator(device_id=N) instead (one GPU per model)")
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.provider = _pick_provider(provider)
        if self.precision == "int8" and self.provider != "cpu":
            raise InputError(f"precision='int8' runs on the CPU provider only (this generator "
                             f"uses {self.provider!r}); on a GPU use provider='tensorrt' (FP16)")
        self.device_id = int(device_id)
        self._windows: tuple[int, int] | None = None  # the TensorRT profile's window range
        if self.provider == "tensorrt":  # FP16, a cached engine, one profile (given ones win)
            from . import tensorrt

            options = tensorrt.generator_options(self.bundle, options)
            self._windows = tensorrt.profile_range(options)
            Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        if "wav2clip" in self.bundle.features.sets:  # refused now, not at the first song
            from ..conditioning.features.wav2clip import missing_onnx_message
            from ..errors import WeightsError

            w2c = self._wav2clip_path()
            if not w2c.is_file():
                raise WeightsError(f"this bundle's music features include Wav2CLIP, but the "
                                   f"bundle has no wav2clip.onnx. {missing_onnx_message(w2c)}")
        denoiser = int8_graph(self.bundle) if self.precision == "int8" else None
        self._model = native().Model(
            engine_config(self.bundle, denoiser), provider=self.provider,
            intra_op_threads=int(threads or 0), device_id=self.device_id,
            provider_options=options)
        self._pool: list[Any] = []  # idle native generators (see _engine)
        self._pool_lock = threading.Lock()
        self._wav2clip: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------- pieces
    @contextlib.contextmanager
    def _engine(self) -> Iterator[Any]:
        """Engine state for one call: a free native generator from the pool, else a new one,
        returned after the call. Concurrent calls get one each; later calls, from any thread,
        reuse them (their buffers stay allocated instead of piling up per thread)."""
        with self._pool_lock:
            gen = self._pool.pop() if self._pool else None
        if gen is None:
            gen = native().Generator(self._model)
        try:
            yield gen
        finally:
            with self._pool_lock:
                self._pool.append(gen)

    def _wav2clip_path(self) -> Path:
        """The Wav2CLIP graph: the bundle's own, else the one in the cache (or its env var)."""
        from ..conditioning.features.wav2clip import default_onnx_path

        return self.bundle.file("wav2clip.onnx") or default_onnx_path()

    def _encoder(self) -> Any:
        if "wav2clip" not in self.bundle.features.sets:
            return None
        with self._lock:
            if self._wav2clip is None:
                from ..conditioning.features.wav2clip import Wav2CLIPEncoder

                self._wav2clip = Wav2CLIPEncoder(self._wav2clip_path())
        return self._wav2clip

    def music_features(self, audio: Any, start: float | None = None,
                       duration: float | None = None) -> np.ndarray:
        """Per-frame features ``(frames, music_dim)`` of the audio, as the model was trained."""
        from ..conditioning.features.music import extract_features

        feats = extract_features(audio, self.bundle.features, start=start, duration=duration,
                                 wav2clip=self._encoder())
        feats.check(self.bundle.features)
        return np.ascontiguousarray(feats.features, dtype=np.float32)

    def _schedule(self, prompt: Prompt) -> list[tuple[float, str, str, dict[str, float]]]:
        """``[(start_seconds, text, genre, genre_probs), ...]`` of a prompt or a prompt
        schedule, checked (:func:`check_schedule`), each text classified once."""
        return [(t, text, *self.choose_genre(text)) for t, text in check_schedule(prompt)]

    def _check_changes(self, schedule: list[tuple[float, str, str, dict[str, float]]],
                       frames: int) -> None:
        """A change takes effect at the first window that starts at or after it: one after the
        last window's start would change nothing, so it is refused."""
        if len(schedule) < 2:
            return
        last = float(plan_windows(frames, self.bundle.window, self.bundle.hop).starts[-1])
        last /= self.bundle.fps
        late = [t for t, *_ in schedule if t > last]
        if late:
            raise InputError(
                f"the prompt schedule changes at {late[0]:g} s, but the last 4 s window of "
                f"this music ({frames / self.bundle.fps:.2f} s) starts at {last:g} s, so the "
                "change would not show; move it to at most that time or dance to more of "
                "the song")

    def _window_genres(self, schedule: list[tuple[float, str, str, dict[str, float]]],
                       frames: int) -> list[str]:
        """The genre in force where each window starts."""
        plan = plan_windows(frames, self.bundle.window, self.bundle.hop)
        starts = [t for t, *_ in schedule]
        return [schedule[bisect.bisect_right(starts, int(f) / self.bundle.fps) - 1][2]
                for f in plan.starts]

    def choose_genre(self, prompt: str) -> tuple[str, dict[str, float]]:
        """``(genre, probabilities)`` of the bundle's genres for a prompt."""
        probs = self.bundle.classifier.classify(prompt, self.bundle.dataset)
        return max(probs, key=probs.__getitem__), probs

    def _table(self, steps: int | None, guidance: float | None, eta: float | None,
               sampler: str | None) -> np.ndarray:
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                  or steps < 1):
            raise InputError(f"steps must be a positive integer, got {steps!r}")
        for name, v in (("guidance", guidance), ("eta", eta)):
            if v is not None and (isinstance(v, bool) or not isinstance(
                    v, (int, float, np.integer, np.floating)) or not np.isfinite(v)):
                raise InputError(f"{name} must be a finite number, got {v!r}")
        if eta is not None and eta < 0:
            raise InputError(f"eta must be >= 0 (0 = deterministic DDIM), got {eta}")
        if sampler is not None and sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)} "
                             "(None: the bundle's default)")
        used = self.bundle.sampling.sampler if sampler is None else sampler
        if used == "dpmpp" and eta is None and self.bundle.sampling.eta != 0:
            eta = 0.0  # the bundle's eta belongs to its DDIM default; DPM-Solver++ has none
        return schedule_array(self.bundle.schedule_table(steps, eta, guidance, sampler=sampler))

    def _sample(self, features: np.ndarray, genre: str | list[str], seed: int,
                table: np.ndarray,
                known: np.ndarray | None, mask: np.ndarray | None,
                progress: Progress | None) -> np.ndarray:
        ids = [self.bundle.genre_id(g) for g in ([genre] if isinstance(genre, str) else genre)]
        # One C_E when every window has the same genre; else one per window (a schedule: each
        # window takes the genre in force where it starts, and the window handover carries the
        # change across an overlap like any seam).
        rows = self.bundle.control_embeddings[ids]
        text = np.ascontiguousarray(rows[0] if len(set(ids)) == 1 else rows, dtype=np.float32)
        motion, _ = self._run(features, text, seed, table, known=known, mask=mask,
                              progress=progress)
        return motion

    def _sample_block(self, features: np.ndarray, text: np.ndarray, seed: int,
                      table: np.ndarray, *, first_window: int, carry: Any
                      ) -> tuple[np.ndarray, Any]:
        """Windows ``first_window ..`` of a song (streaming): continues ``carry`` (the block
        before's), returns the raw motion and this block's carry."""
        return self._run(features, text, seed, table, first_window=first_window, carry=carry,
                         return_carry=True)

    def _run(self, features: np.ndarray, text: np.ndarray, seed: int, table: np.ndarray, *,
             known: np.ndarray | None = None, mask: np.ndarray | None = None,
             progress: Progress | None = None, first_window: int = 0, carry: Any = None,
             return_carry: bool = False) -> tuple[np.ndarray, Any]:
        """One engine request; the raw (unnormalized) motion and, if asked, the carry."""
        _check_seed(seed)
        windows = plan_windows(features.shape[0], self.bundle.window, self.bundle.hop).num_windows
        if self._windows is not None and not self._windows[0] <= windows <= self._windows[1]:
            fewest, most = self._windows
            seconds = (self.bundle.window + (most - 1) * self.bundle.hop) / self.bundle.fps
            raise InputError(
                f"this music needs {windows} windows but the TensorRT engine's profile covers "
                f"{fewest} to {most} ({seconds:g} s at most): build one that covers it (python "
                "-m export.tensorrt --min-windows A --max-windows N, then pass "
                "gcdance.engine.tensorrt.provider_options(bundle, "
                "profile=EngineProfile(min_windows=A, max_windows=N)) as provider_options), "
                "pass another duration, or use "
                "provider='cuda'")
        with self._engine() as engine:
            out = engine.generate(features, text, table, seed=int(seed), known=known,
                                  mask=mask, progress=progress, return_windows=False,
                                  first_window=first_window, carry=carry,
                                  return_carry=return_carry)
        raw = self.bundle.normalizer.inverse(out[0].astype(np.float64)).astype(np.float32)
        return raw, (out[2] if return_carry else None)

    def _lock_feet(self, motion: np.ndarray, foot_lock: bool,
                   keep: np.ndarray | None = None) -> np.ndarray:
        """Planted feet pinned by leg IK (:func:`gcdance.motion.foot_lock.lock_feet`), if asked;
        an edit's kept values are left alone."""
        if not foot_lock:
            return motion
        from ..motion.foot_lock import lock_feet

        return lock_feet(motion, self.bundle.layout, keep=keep)

    def music_beats(self, audio: Any, start: float | None = None,
                    duration: float | None = None, *,
                    features: np.ndarray | None = None) -> np.ndarray:
        """Beat positions (frames) of the audio that :meth:`generate` syncs the dance to: the
        beat tracker's on the onset curve of the bundle's music features (``rhythm`` or
        ``baseline`` set; the bounded ``baseline`` set's beat column holds them), else on that
        of the ``rhythm`` set computed for the purpose
        (:mod:`gcdance.conditioning.features.beats`). ``features``: the audio's
        :meth:`music_features`, when already computed (used when they carry the curve)."""
        from ..conditioning.features.beats import rhythm_config, song_beats
        from ..conditioning.features.music import extract_features

        config = self.bundle.features
        extra = rhythm_config(config)
        if extra is not None:
            return song_beats(extract_features(audio, extra, start=start,
                                               duration=duration).features, extra)
        if features is None:
            features = self.music_features(audio, start, duration)
        return song_beats(features, config)

    def _sync_beats(self, motion: np.ndarray, beat_sync: bool, features: np.ndarray, audio: Any,
                    start: float | None, duration: float | None,
                    keep: np.ndarray | None = None) -> np.ndarray:
        """The motion retimed to pulse with the music's beats
        (:func:`gcdance.motion.beat_sync.beat_sync`), if asked; an edit's kept frames stay."""
        if not beat_sync:
            return motion
        from ..motion.beat_sync import beat_sync as sync

        beats = self.music_beats(audio, start, duration, features=features)
        return sync(motion, self.bundle.layout, beats, fps=self.bundle.fps, keep=keep)

    def _used(self, guidance: float | None, eta: float | None, sampler: str | None, *,
              beat_sync: bool, foot_lock: bool) -> dict[str, Any]:
        """The sampler, guidance, eta, beat sync and foot lock a generation ran with (given, else
        the bundle's)."""
        sampling = self.bundle.sampling
        sampler = sampling.sampler if sampler is None else sampler
        eta = (0.0 if sampler == "dpmpp" else sampling.eta) if eta is None else eta
        used: dict[str, Any] = {
            "sampler": sampler,
            "guidance": float(sampling.guidance if guidance is None else guidance),
            "eta": float(eta), "beat_sync": beat_sync, "foot_lock": foot_lock}
        if sampling.guidance_ramp:
            used |= {"guidance_ramp": float(sampling.guidance_ramp),
                     "guidance_start": float(sampling.guidance_start)}
        if sampling.timesteps != UNNAMED_GRID:  # EDGE's grid goes unsaid, as in older dances
            used["timesteps"] = sampling.timesteps
        return used

    def _dance(self, motion: np.ndarray, schedule: list[tuple[float, str, str, dict[str, float]]],
               seed: int, audio: Any, start: float | None, duration: float | None,
               table: np.ndarray, **settings: Any) -> Dance:
        path = (str(Path(audio).expanduser().resolve()) if isinstance(audio, (str, os.PathLike))
                else None)
        rate = None if path is not None else int(audio[1])
        info = AudioInfo(path=path, start=float(start or 0.0),
                         duration=motion.shape[0] / self.bundle.fps if duration is None
                         else float(duration), sample_rate=rate)
        _, prompt, genre, probs = schedule[0]
        if len(schedule) > 1:
            settings["prompt_schedule"] = [[t, text] for t, text, *_ in schedule]
        return Dance(motion, layout=self.bundle.layout, fps=self.bundle.fps, genre=genre,
                     genre_probs=probs, prompt=prompt, seed=int(seed), audio=info,
                     schedule=[(t, g) for t, _, g, _ in schedule],
                     settings={"steps": int(table.shape[0]), "bundle": str(self.bundle.path),
                               "provider": self.provider, "precision": self.precision,
                               **settings})

    # ---------------------------------------------------------------------------- public
    def generate(self, audio: Any, prompt: Prompt = "energetic hip-hop with sharp arm hits", *,
                 seed: int = 0, steps: int | None = None, guidance: float | None = None,
                 eta: float | None = None, sampler: str | None = None,
                 start: float | None = None, duration: float | None = None,
                 beat_sync: bool = True, foot_lock: bool = True,
                 progress: Progress | None = None) -> Dance:
        """A dance to ``audio`` (a path, or ``(samples, sample_rate)``) in the prompt's genre.

        ``prompt`` is a genre name or free text, or a schedule ``[(0, "jazz"), (24.0,
        "breaking"), ...]`` (sorted, the first at 0, every change inside the music): each 4 s
        window dances the genre in force where it starts, and ``dance.schedule`` lists
        ``(start_seconds, genre)``. The windows before the first change are the unscheduled
        dance's (same seed), up to the few frames before the change that the post-processes
        read past (the turn limit's 18, the beat sync's).

        ``steps``/``guidance``/``eta``/``sampler`` default to the bundle's sampling settings
        (``sampler``: ``"ddim"`` or ``"dpmpp"``, DPM-Solver++(2M);
        :mod:`gcdance.sampling.schedule`; with a bundle whose guidance rises over the steps,
        ``guidance`` is the weight it reaches), and the values used go into ``dance.settings``;
        ``start`` and ``duration`` select seconds of the audio (None: all of it). ``beat_sync``
        retimes the dance to slow into every beat of the music and speed up between them
        (:mod:`gcdance.motion.beat_sync`); ``foot_lock`` then pins the feet the model labels as
        planted (leg IK, :mod:`gcdance.motion.foot_lock`); ``False`` keeps the model's raw
        timing or legs. Same inputs and seed give the same dance on the same machine and
        provider.
        """
        beat_sync = _check_flag(beat_sync, "beat_sync")
        foot_lock = _check_flag(foot_lock, "foot_lock")
        table = self._table(steps, guidance, eta, sampler)
        schedule = self._schedule(prompt)  # a bad prompt fails before the music is read
        features = self.music_features(audio, start, duration)
        self._check_changes(schedule, features.shape[0])
        genres = self._window_genres(schedule, features.shape[0])
        motion = self._sample(features, genres, seed, table, None, None, progress)
        motion = limit_turns(motion, self.bundle.layout)
        motion = self._sync_beats(motion, beat_sync, features, audio, start, duration)
        motion = self._lock_feet(motion, foot_lock)
        return self._dance(motion, schedule, seed, audio, start, duration, table,
                           **self._used(guidance, eta, sampler, beat_sync=beat_sync,
                                       foot_lock=foot_lock))

    def stream(self, chunks: Iterable[Any],
               prompt: Prompt = "energetic hip-hop with sharp arm hits", *, sample_rate: int,
               seed: int = 0, steps: int | None = None, guidance: float | None = None,
               eta: float | None = None, sampler: str | None = None,
               beat_sync: bool = True, foot_lock: bool = True
               ) -> Iterator[tuple[int, np.ndarray]]:
        """Dance to audio that is still arriving: yields ``(start_frame, motion)`` pieces.

        ``chunks``: an iterable of mono audio blocks of any size (float or integer PCM arrays,
        or ``(samples, sample_rate)`` pairs) at ``sample_rate`` Hz. Each piece is unnormalized
        motion ``(frames, dim)`` at the bundle's fps, yielded as soon as nothing that follows
        can change it; the pieces are consecutive from frame 0, and joined they equal
        :meth:`generate` on the whole audio with the same prompt (a schedule too), seed and
        settings. The first piece comes after the first 4 s window's audio, the features'
        look-ahead (``bundle.features.lookahead_samples``) and one window's compute, and with
        the beat sync once the beats after its frames settle (the default model: after 6.7 s
        of audio, ``docs/streaming.md``); memory does not grow with the song beyond the
        pieces. Needs a bundle whose features have a
        bounded look-ahead: the bundled default model's (its ``baseline`` set bounded, final
        2.6 s after a frame), ``stft`` + ``rhythm`` (0.53 s); not EDGE's whole-song
        ``baseline`` set, nor Wav2CLIP with one normalisation over the song.

        Every argument is checked before the first chunk is read; a chunk's problems (shape,
        dtype, NaN, a changed sample rate) when it arrives.
        """
        from ..conditioning.features.stream import FeatureStream
        from .streaming import stream_dance

        # The feature stream refuses whole-song features and a bad sample rate.
        features = FeatureStream(self.bundle.features, sample_rate)
        beat_sync = _check_flag(beat_sync, "beat_sync")
        foot_lock = _check_flag(foot_lock, "foot_lock")
        table = self._table(steps, guidance, eta, sampler)
        schedule = self._schedule(prompt)
        _check_seed(seed)
        if isinstance(chunks, (np.ndarray, str, bytes)) or not hasattr(chunks, "__iter__"):
            raise InputError(f"chunks must be an iterable of audio blocks (e.g. a list or a "
                             f"generator of arrays), got {type(chunks).__name__}; for a whole "
                             "song use generate()")
        return stream_dance(self, chunks, schedule, features, seed=int(seed), table=table,
                            beat_sync=beat_sync, foot_lock=foot_lock)

    def edit(self, audio: Any, prompt: Prompt, reference: Dance | np.ndarray,
             keep: masks_mod.Mask | np.ndarray, *, seed: int = 0, steps: int | None = None,
             guidance: float | None = None, eta: float | None = None,
             sampler: str | None = None,
             start: float | None = None, duration: float | None = None,
             beat_sync: bool = True, foot_lock: bool = True,
             progress: Progress | None = None) -> Dance:
        """Regenerate what ``keep`` does not keep of ``reference`` (inpainting, Eq. 15).

        ``reference``: a ``Dance`` or unnormalized ``(frames, dim)`` motion, frame-aligned with
        the audio segment; ``keep``: a ``gcdance.masks`` expression (``joints("body")``,
        ``frames(0, 30)``, combined with ``|``, ``&``, ``~``) or a boolean ``(frames, dim)``
        array. Kept values come back unchanged (the turn limit, the beat sync and the foot lock,
        as in :meth:`generate`, change only what was regenerated: beat sync leaves alone every
        frame where anything is kept).
        """
        beat_sync = _check_flag(beat_sync, "beat_sync")
        foot_lock = _check_flag(foot_lock, "foot_lock")
        motion_ref = reference.motion if isinstance(reference, Dance) else np.asarray(reference)
        layout = self.bundle.layout
        if motion_ref.ndim != 2 or motion_ref.shape[1] != layout.dim:
            raise InputError(f"reference motion must be (frames, {layout.dim}) for this "
                             f"{layout.name} model, got {motion_ref.shape}")
        table = self._table(steps, guidance, eta, sampler)
        schedule = self._schedule(prompt)
        features = self.music_features(audio, start, duration)
        frames = features.shape[0]
        self._check_changes(schedule, frames)
        if motion_ref.shape[0] != frames:
            raise InputError(
                f"the reference has {motion_ref.shape[0]} frames but the audio segment has "
                f"{frames} ({frames / self.bundle.fps:.2f} s at {self.bundle.fps} fps); pass the "
                "same audio, start and duration the reference was made with")
        mask = masks_mod.resolve(keep, layout, frames)
        ref = np.asarray(motion_ref, np.float64)
        if not np.isfinite(ref[mask]).all():
            raise InputError("the reference motion has NaN or inf where the mask keeps it")
        known = self.bundle.normalizer.transform(np.where(mask, ref, 0.0)).astype(np.float32)
        out = self._sample(features, self._window_genres(schedule, frames), seed, table, known,
                           mask.view(np.uint8), progress)
        out[mask] = ref[mask].astype(np.float32)  # exactly the given values where kept
        # All three leave the kept values alone.
        out = limit_turns(out, layout, keep=mask)
        out = self._sync_beats(out, beat_sync, features, audio, start, duration, keep=mask)
        out = self._lock_feet(out, foot_lock, keep=mask)
        return self._dance(out, schedule, seed, audio, start, duration, table,
                           **self._used(guidance, eta, sampler, beat_sync=beat_sync,
                                       foot_lock=foot_lock),
                           edited=True)

    def __repr__(self) -> str:
        return (f"Generator(bundle={str(self.bundle.path)!r}, provider={self.provider!r}, "
                f"precision={self.precision!r}, "
                f"dataset={self.bundle.dataset!r})")

