"""Per-frame Wav2CLIP embeddings with ONNX Runtime (no PyTorch at inference).

Wav2CLIP maps a clip of audio to one 512-dim CLIP-space vector. The per-frame (30 fps) sequence is
built as in the GCDance reference code: one window of audio per motion frame, all windows batched
through the network. Window ``k`` covers samples ``[512 k + 256 - w / 2, 512 k + 256 + w / 2)``
(zero-padded outside the audio), ``w = FeatureConfig.wav2clip_window``; with the default
``w = 512`` the windows tile the audio exactly (the reference's
``wav2clip.get_model(frame_length=512, hop_length=512)``), ``n // 512`` of them for ``n`` samples.

Inside the network each window's log power spectrogram (n_fft 512, hop 353) is standardised.
``wav2clip`` uses the mean/std of everything in the batch it is given; here the statistics are an
explicit input of the ONNX graph, computed in NumPy (float64, streamed) either over every window
of the analysed audio (``norm="audio"``, the reference: a clip's windows form one batch) or per
window (``norm="frame"``). A std below :data:`STD_FLOOR` (digital silence) is raised to it, so
silence maps to a zero spectrogram instead of amplified rounding noise.

Weights: the official checkpoint (``Wav2CLIP.pt``) is loaded by ``training/wav2clip.py`` and
exported with ``python -m export.wav2clip_onnx``; this module only runs the exported graph.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...cache import cache_dir
from ...errors import EngineError, InputError, WeightsError

N_FFT = 512
"""Wav2CLIP's STFT size (``torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)``)."""
HOP = 353
LOG_EPS = 1e-7
STD_EPS = 1e-9
STD_FLOOR = 1e-3
"""Smallest standardisation std used (log-power units; real audio has several units)."""
EMBED_DIM = 512

CHECKPOINT_URL = (
    "https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt"
)
CHECKPOINT_ENV = "GCDANCE_WAV2CLIP_CHECKPOINT"
ONNX_ENV = "GCDANCE_WAV2CLIP_ONNX"
INPUT_NAMES = ("audio", "mean", "std")
OUTPUT_NAME = "embedding"


def default_checkpoint_path() -> Path:
    """Where the official ``Wav2CLIP.pt`` is looked for: ``$GCDANCE_WAV2CLIP_CHECKPOINT`` or
    ``<cache>/weights/Wav2CLIP.pt``."""
    env = os.environ.get(CHECKPOINT_ENV)
    return Path(env).expanduser() if env else cache_dir() / "weights" / "Wav2CLIP.pt"


def default_onnx_path() -> Path:
    """Where the exported graph is looked for: ``$GCDANCE_WAV2CLIP_ONNX`` or
    ``<cache>/wav2clip/wav2clip.onnx``."""
    env = os.environ.get(ONNX_ENV)
    return Path(env).expanduser() if env else cache_dir() / "wav2clip" / "wav2clip.onnx"


def missing_checkpoint_message(path: Path) -> str:
    return (
        f"Wav2CLIP checkpoint not found at '{path}'. Its weights are never downloaded "
        f"automatically: fetch Wav2CLIP.pt from {CHECKPOINT_URL} and put it at '{path}' (or "
        f"pass its path, or set {CHECKPOINT_ENV})."
    )


def missing_onnx_message(path: Path) -> str:
    return (
        f"Wav2CLIP ONNX model not found at '{path}'. Model bundles ship it as wav2clip.onnx; to "
        f"build it from the official checkpoint run `python -m export.wav2clip_onnx --checkpoint "
        f"Wav2CLIP.pt --out '{path}'` (or pass its path, or set {ONNX_ENV})."
    )


def window_starts(n_frames: int, window: int, hop: int) -> np.ndarray:
    """First sample of each frame's window: ``hop * k + hop // 2 - window // 2``."""
    return np.arange(n_frames, dtype=np.int64) * hop + hop // 2 - window // 2


def frame_windows(y: np.ndarray, k0: int, k1: int, window: int, hop: int) -> np.ndarray:
    """Windows of frames ``k0 .. k1 - 1`` as a contiguous ``(k1 - k0, window)`` float32 array."""
    first = hop * k0 + hop // 2 - window // 2
    last = hop * (k1 - 1) + hop // 2 - window // 2 + window
    lo, hi = max(first, 0), min(last, y.shape[0])
    region = np.zeros(last - first, dtype=np.float32)
    if hi > lo:
        region[lo - first : hi - first] = y[lo:hi]
    view = np.lib.stride_tricks.sliding_window_view(region, window)[::hop]
    return np.array(view[: k1 - k0], dtype=np.float32, copy=True)


def log_spectrogram(windows: np.ndarray) -> np.ndarray:
    """``(B, w)`` windows -> ``(B, 1 + w // 353, 257)`` float64 ``log(|STFT|^2 + 1e-7)``.

    The NumPy twin of the graph's front end (reflect padding, periodic Hann), used for the
    standardisation statistics.
    """
    half = N_FFT // 2
    padded = np.pad(windows.astype(np.float64), ((0, 0), (half, half)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP]
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(frames * hann, axis=-1)) ** 2
    return np.log(power + LOG_EPS)


class _RunningMoments:
    """Streaming mean and unbiased variance (Chan et al.'s parallel combination)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, x: np.ndarray) -> None:
        n_b = x.size
        if n_b == 0:
            return
        mean_b = float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    def std(self) -> float:
        return (self.m2 / (self.n - 1)) ** 0.5 if self.n > 1 else 0.0


class Wav2CLIPEncoder:
    """ONNX Runtime session over an exported Wav2CLIP graph (``export/wav2clip_onnx.py``).

    ``path``: the ``.onnx`` file (``None`` = :func:`default_onnx_path`); ``threads``: ORT intra-op
    threads (``None`` = ORT's default); ``providers``: ORT execution providers (default CPU).
    ``window_range`` (attribute): the window lengths the graph accepts, from its metadata (the
    "narrow" variant is specialised to 353..705-sample windows).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path).expanduser() if path is not None else default_onnx_path()
        if not self.path.is_file():
            raise WeightsError(missing_onnx_message(self.path))
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as err:  # ORT raises its own exception types
            raise EngineError(
                f"ONNX Runtime cannot load the Wav2CLIP graph '{self.path}': {err}. Re-export "
                "it with `python -m export.wav2clip_onnx`."
            ) from err
        inputs = tuple(i.name for i in self.session.get_inputs())
        outputs = list(self.session.get_outputs())
        if inputs != INPUT_NAMES or [o.name for o in outputs] != [OUTPUT_NAME] or (
            outputs[0].shape[-1] != EMBED_DIM
        ):
            raise WeightsError(
                f"'{self.path}' is not a gcdance Wav2CLIP graph (inputs {inputs}, outputs "
                f"{[(o.name, o.shape) for o in outputs]}; expected inputs {INPUT_NAMES} and "
                f"output '{OUTPUT_NAME}' (B, {EMBED_DIM})). Re-export it."
            )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.window_range = (
            int(meta.get("window_min", N_FFT // 2 + 1)),
            int(meta.get("window_max", 1 << 30)),
        )
        self.variant = meta.get("variant", "general")

    def run(self, windows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """One batch: ``(B, w)`` windows and ``(B,)`` statistics -> ``(B, 512)``."""
        feeds = {
            "audio": np.ascontiguousarray(windows, dtype=np.float32),
            "mean": np.ascontiguousarray(mean, dtype=np.float32),
            "std": np.ascontiguousarray(std, dtype=np.float32),
        }
        return self.session.run([OUTPUT_NAME], feeds)[0]

    def embed(
        self,
        y: np.ndarray,
        n_frames: int,
        *,
        window: int = 512,
        hop: int = 512,
        norm: str = "audio",
        batch_size: int | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(n_frames, 512)`` float32 embeddings of mono audio ``y`` (see the module docstring).

        ``out``: optional ``(n_frames, 512)`` array (e.g. a column slice of a larger feature
        matrix) written in place and returned.
        """
        if norm not in ("audio", "frame"):
            raise InputError(f"norm must be 'audio' or 'frame', got {norm!r}")
        lo, hi = self.window_range
        if not lo <= window <= hi:
            raise InputError(
                f"the Wav2CLIP graph '{self.path}' ({self.variant}) takes windows of {lo}..{hi} "
                f"samples, not {window}. Use the wav2clip_window it was exported for, or "
                f"re-export it: python -m export.wav2clip_onnx --window {window}"
            )
        if out is None:
            out = np.empty((n_frames, EMBED_DIM), dtype=np.float32)
        elif out.shape != (n_frames, EMBED_DIM):
            raise InputError(f"out has shape {out.shape}, expected {(n_frames, EMBED_DIM)}")
        if n_frames == 0:
            return out
        batch = batch_size or max(1, (1 << 18) // window)
        y = np.asarray(y, dtype=np.float32)
        if norm == "audio":
            moments = _RunningMoments()
            for k0 in range(0, n_frames, batch):
                k1 = min(n_frames, k0 + batch)
                moments.add(log_spectrogram(frame_windows(y, k0, k1, window, hop)))
            mean_all = moments.mean
            std_all = max(moments.std(), STD_FLOOR)
        for k0 in range(0, n_frames, batch):
            k1 = min(n_frames, k0 + batch)
            w = frame_windows(y, k0, k1, window, hop)
            if norm == "audio":
                mean = np.full(k1 - k0, mean_all)
                std = np.full(k1 - k0, std_all)
            else:
                spec = log_spectrogram(w).reshape(k1 - k0, -1)
                mean = spec.mean(axis=1)
                std = np.maximum(spec.std(axis=1, ddof=1), STD_FLOOR)
            out[k0:k1] = self.run(w, mean, std)
        return out
