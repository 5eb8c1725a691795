"""Experiments of docs/music_diagnosis.md: does the music pathway of the default model work?

    python tools/music_diagnosis.py align CORPUS          # beats vs features vs motion accents
    python tools/music_diagnosis.py sensitivity BUNDLE CORPUS   # x0 error: true/shuffled music
    python tools/music_diagnosis.py foot CORPUS           # why the foot loss logs 0.0000
    python tools/music_diagnosis.py probe                 # tiny model on the onset probe

Run from the repository root with one thread (``OMP_NUM_THREADS=1``); every subcommand prints
the numbers the document quotes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # training/ lives in the repository root
    sys.path.insert(0, str(REPO))

FPS = 30
LAGS = np.arange(-8, 9)


def _lag_profile(signal: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Mean of ``signal`` at ``frames + lag`` for every lag in ``LAGS`` (frames kept inside)."""
    out = np.full(LAGS.size, np.nan)
    for i, lag in enumerate(LAGS):
        f = frames + lag
        f = f[(f >= 0) & (f < signal.size)]
        if f.size:
            out[i] = signal[f].mean()
    return out


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def align(corpus: Path, max_files: int) -> dict[str, object]:
    """Beat frames of the labels against (a) the onset envelope and beat column of the training
    features, (b) the body-speed minima of the corpus dances, as lag profiles."""
    from choreography.report import body_speeds, joints_of
    from gcdance.conditioning.features import extract_features
    from gcdance.conditioning.features.config import FeatureConfig
    from training.data import FEATURE_PRESETS

    cfg = FeatureConfig(sets=FEATURE_PRESETS["stft_baseline"])
    base = cfg.slices()["baseline"].start
    onset_prof, speed_prof, lengths, near, ratio = [], [], [], [], []
    names = sorted(p.stem for p in (corpus / "motion").glob("*.npy"))[:max_files]
    for name in names:
        label = json.loads((corpus / "label_json" / f"{name}.json").read_text())
        raw = np.load(corpus / "motion" / f"{name}.npy")
        feats = extract_features(str(corpus / "music_wav" / f"{name}.wav"), cfg).features
        lengths.append(feats.shape[0] - raw.shape[0])
        beats = np.round(np.asarray(label["beats"]) * FPS).astype(np.int64)
        beats = beats[(beats >= 8) & (beats < min(len(raw), len(feats)) - 9)]
        onset_prof.append(_lag_profile(_zscore(feats[:, base]), beats))
        joints, _ = joints_of(raw)
        speed = body_speeds(joints).mean(axis=1)  # speed[k]: frames k -> k + 1
        # A speed minimum at a key frame k spans speed[k - 1] and speed[k]: average them.
        at_frame = np.concatenate([[speed[0]], (speed[1:] + speed[:-1]) / 2, [speed[-1]]])
        speed_prof.append(_lag_profile(_zscore(at_frame), beats))
        fbeats = np.flatnonzero(feats[:, base + 34] > 0.5)
        if fbeats.size and beats.size:
            d = np.abs(fbeats[:, None] - beats[None, :]).min(axis=1)
            near.append(float((d <= 2).mean()))
            ratio.append(fbeats.size / max(beats.size, 1))
    onset = np.nanmean(onset_prof, axis=0)
    speed = np.nanmean(speed_prof, axis=0)
    return {
        "files": len(names),
        "feature_minus_motion_frames": [int(min(lengths)), int(max(lengths))],
        "onset_envelope_by_lag": dict(zip(LAGS.tolist(), np.round(onset, 3).tolist(),
                                          strict=True)),
        "onset_peak_lag": int(LAGS[np.nanargmax(onset)]),
        "body_speed_by_lag": dict(zip(LAGS.tolist(), np.round(speed, 3).tolist(), strict=True)),
        "speed_minimum_lag": int(LAGS[np.nanargmin(speed)]),
        "feature_beats_within_2_frames_of_a_corpus_beat": round(float(np.mean(near)), 3),
        "feature_beats_per_corpus_beat": [round(float(min(ratio)), 2),
                                          round(float(np.median(ratio)), 2),
                                          round(float(max(ratio)), 2)],
    }


class _Denoiser:
    """A bundle's x0 prediction: its condition graph, then its denoiser graph."""

    def __init__(self, bundle: Path) -> None:
        import onnxruntime as ort

        from gcdance.engine.bundle import load_bundle

        self.bundle = load_bundle(bundle)
        opts = {"providers": ["CPUExecutionProvider"]}
        self.condition = ort.InferenceSession(str(self.bundle.graphs.condition), **opts)
        self.denoiser = ort.InferenceSession(str(self.bundle.graphs.denoiser), **opts)

    def __call__(self, x_t: np.ndarray, t: float, music: np.ndarray, text: np.ndarray,
                 keep: float) -> np.ndarray:
        b = len(x_t)
        mask = np.full(b, keep, np.float32)
        cache = self.condition.run(None, {"music": music, "text_emb": text, "cond_mask": mask})
        return self.denoiser.run(None, {
            "x_t": x_t, "t": np.full(b, t, np.float32), "text_emb": text, "cond_mask": mask,
            "cond_cache": cache[0]})[0]


def _corpus_windows(corpus: Path, split: str, stride: int, max_windows: int, cfg: object
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw motion windows ``(N, 120, 319)``, their features (``cfg``: the bundle's) and genre
    ids, cut exactly as ``training.data.prepare_data`` cuts them."""
    from gcdance.conditioning.features import extract_features
    from gcdance.datasets.finedance import FineDanceDataset
    from gcdance.motion.layout import get_layout
    from gcdance.sampling.windows import make_windows, slice_windows

    layout = get_layout("finedance")
    ds = FineDanceDataset(corpus, split)  # type: ignore[arg-type]
    motions, musics, genres = [], [], []
    for name in ds.names:
        item = ds[name]
        feats = extract_features(str(corpus / "music_wav" / f"{name}.wav"), cfg).features
        n = min(len(item.motion), len(feats))
        win = make_windows(np.asarray(item.motion[:n], np.float32), layout, 120, stride, None,
                           "xz")
        motions.append(win.motion)
        musics.append(slice_windows(feats[:n], win.starts, 120))
        genres.append(np.full(len(win.starts), item.genre_id))
    rng = np.random.default_rng(0)
    m, f, g = np.concatenate(motions), np.concatenate(musics), np.concatenate(genres)
    keep = np.sort(rng.permutation(len(m))[:max_windows])
    return m[keep], f[keep], g[keep]


def sensitivity(bundle: Path, corpus: Path, split: str, max_windows: int,
                timesteps: Sequence[int]) -> dict[str, object]:
    """x0-prediction error of the bundle's denoiser on corpus windows with the true condition,
    another window's music, another genre, and the null condition; same noise for all."""
    from gcdance.sampling.schedule import alphas_cumprod

    model = _Denoiser(bundle)
    raw, music, genre = _corpus_windows(corpus, split, 60, max_windows, model.bundle.features)
    x0 = model.bundle.normalizer.transform(raw).astype(np.float32)
    control = model.bundle.control_embeddings.astype(np.float32)
    ab = alphas_cumprod(1000)
    n = len(x0)
    other = (np.arange(n) + n // 2) % n  # another window, almost always another file
    rng = np.random.default_rng(1)
    rows: dict[str, dict[str, float]] = {}
    for t in timesteps:
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        x_t = (np.sqrt(ab[t]) * x0 + np.sqrt(1 - ab[t]) * noise).astype(np.float32)
        cases = {"true": (music, genre, 1.0), "shuffled_music": (music[other], genre, 1.0),
                 "music_shifted_8_frames": (np.roll(music, 8, axis=1), genre, 1.0),
                 "other_genre": (music, (genre + 8) % 16, 1.0), "null": (music, genre, 0.0)}
        row = {}
        for case, (mus, gen, keep) in cases.items():
            errs = []
            for i in range(0, n, 16):
                sl = slice(i, min(n, i + 16))
                pred = model(x_t[sl], t, mus[sl], control[gen[sl]], keep)
                errs.append(((pred - x0[sl]) ** 2).mean(axis=(1, 2)))
            row[case] = float(np.concatenate(errs).mean())
        rows[str(t)] = {k: round(v, 5) for k, v in row.items()}
    return {"windows": n, "split": split, "mse_x0_by_timestep": rows}


def foot(bundle: Path, corpus: Path, max_windows: int, timesteps: Sequence[int]
         ) -> dict[str, object]:
    """The foot loss of training (``training.objectives.losses``) on corpus windows: of the truth,
    and of the bundle's x0 predictions, with the share of frames it counts as planted."""
    import torch

    from gcdance.motion.layout import get_layout
    from gcdance.sampling.schedule import alphas_cumprod
    from training.objectives.losses import DanceLosses

    layout = get_layout("finedance")
    model = _Denoiser(bundle)
    raw, music, genre = _corpus_windows(corpus, "train", 60, max_windows, model.bundle.features)
    norm = model.bundle.normalizer
    losses = DanceLosses(layout, norm)
    x0 = norm.transform(raw).astype(np.float32)
    control = model.bundle.control_embeddings.astype(np.float32)
    ab = alphas_cumprod(1000)
    rng = np.random.default_rng(2)
    c = layout.contacts

    def stats(pred: np.ndarray) -> dict[str, float]:
        p = torch.from_numpy(pred)
        out = losses(p, torch.from_numpy(x0))
        feet = losses.joints(p).index_select(2, losses.contact_joints).numpy()
        speed = np.linalg.norm(np.diff(feet, axis=1), axis=-1) * FPS  # m/s
        planted = norm.inverse(pred)[:, :-1, c] > losses.contact_threshold
        return {"foot": float(out["foot"]), "simple": float(out["simple"]),
                "planted_share": round(float(planted.mean()), 3),
                "planted_foot_speed_m_s": round(float(speed[planted].mean()), 4)
                if planted.any() else 0.0}

    rows = {"truth": stats(x0)}
    for t in timesteps:
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        x_t = (np.sqrt(ab[t]) * x0 + np.sqrt(1 - ab[t]) * noise).astype(np.float32)
        preds = [model(x_t[i:i + 16], t, music[i:i + 16], control[genre[i:i + 16]], 1.0)
                 for i in range(0, len(x0), 16)]
        rows[f"pred_t{t}"] = stats(np.concatenate(preds))
    return {"windows": len(x0), "contact_threshold": losses.contact_threshold, **rows}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("align")
    a.add_argument("corpus", type=Path)
    a.add_argument("--max-files", type=int, default=32)
    s = sub.add_parser("sensitivity")
    s.add_argument("bundle", type=Path)
    s.add_argument("corpus", type=Path)
    s.add_argument("--split", default="test")
    s.add_argument("--max-windows", type=int, default=64)
    s.add_argument("--timesteps", type=int, nargs="+", default=[50, 200, 500, 800])
    f = sub.add_parser("foot")
    f.add_argument("bundle", type=Path)
    f.add_argument("corpus", type=Path)
    f.add_argument("--max-windows", type=int, default=64)
    f.add_argument("--timesteps", type=int, nargs="+", default=[50, 500])
    args = ap.parse_args(argv)
    if args.cmd == "align":
        print(json.dumps(align(args.corpus, args.max_files), indent=1))
    elif args.cmd == "sensitivity":
        print(json.dumps(sensitivity(args.bundle, args.corpus, args.split, args.max_windows,
                                     args.timesteps), indent=1))
    elif args.cmd == "foot":
        print(json.dumps(foot(args.bundle, args.corpus, args.max_windows, args.timesteps),
                         indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
