"""Quality report of a corpus: ``python -m choreography.report DIR [--split all]``.

Per genre (means over its files):

- ``PFC``: ``gcdance.metrics.pfc`` (lower = less foot sliding; 0 when a foot is always planted).
- ``skate``: mean horizontal speed (m/s) of feet on the floor (toe joint within 5 mm of its
  planted height; per foot the slower of ankle and toe, as in PFC) - direct foot sliding,
  ~0 except deliberate unloaded glides.
- ``BAS``: ``gcdance.metrics.beat_align_score`` against the beat grid the dance was made on
  (label ``beats``), against librosa's own beat tracking of the wav (``BAS_lib``, the paper's
  protocol; librosa often picks another tempo octave than the listed one), and a control: the
  grid shifted by half a beat (``BAS_shift``; should be clearly lower than ``BAS``).
- ``speed``: mean and 99th percentile joint speed (m/s, 22 body joints).
- ``arm_in``: % of frames with a wrist or elbow inside the torso (:func:`arm_in_torso`).

Separability: 4 s windows (2 s hop) -> simple pose/motion statistics (:func:`motion_features`);
nearest-centroid and multinomial logistic-regression classifiers fitted on the windows of the
training-track files, top-1 accuracy on the windows (and per-file majority vote) of the
held-out-track files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gcdance.conditioning.genres import FINEDANCE_GENRES
from gcdance.datasets.finedance import (
    FINEDANCE_FPS,
    read_finedance_label,
    read_finedance_motion,
)
from gcdance.errors import DataFormatError, GCDanceError, InputError
from gcdance.metrics import beat_align_score, music_beats_from_audio, pfc
from gcdance.motion.rotation import rotation_6d_to_matrix
from gcdance.motion.skeleton import Skeleton

from .kinematics import rot_y
from .synth import PLANT_HEIGHT, TORSO_ELLIPSE

__all__ = [
    "WINDOW", "arm_in_torso", "body_speeds", "file_report", "logistic_regression",
    "motion_features", "separability",
]

WINDOW = 120
HOP = 60
_BODY = np.arange(22)
_FEAT_JOINTS = (4, 5, 7, 8, 10, 11, 15, 16, 17, 18, 19, 20, 21)  # knees, feet, head, arms
TORSO_BODY = (0.15, 0.11)
_TIPS = (24, 27, 30, 33, 36, 39, 42, 45, 48, 51)  # finger tips (index, middle, pinky, ring, thumb)


def joints_of(raw: np.ndarray, skeleton: Skeleton | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions ``(T, 52, 3)`` and global rotations of raw FineDance motion."""
    skel = skeleton or Skeleton.load("smplh52")
    rot = rotation_6d_to_matrix(raw[:, 3:].astype(np.float64).reshape(-1, 52, 6))
    return skel.forward_kinematics_full(rot, raw[:, :3].astype(np.float64))


def body_speeds(joints: np.ndarray, fps: float = FINEDANCE_FPS) -> np.ndarray:
    """``(frames - 1, 22)`` speeds (m/s) of the body joints."""
    return np.linalg.norm(np.diff(joints[:, _BODY], axis=0), axis=-1) * fps


def _heading_frame(joints: np.ndarray) -> np.ndarray:
    """Joints relative to the pelvis, rotated so the hips' facing direction is +Z."""
    across = joints[:, 1] - joints[:, 2]  # right hip -> left hip (+X when facing +Z)
    yaw = np.arctan2(-across[:, 2], across[:, 0])
    rel = joints - joints[:, :1]
    return np.einsum("tij,tkj->tki", rot_y(-yaw), rel)


def motion_features(joints: np.ndarray, fps: float = FINEDANCE_FPS) -> np.ndarray:
    """``(windows, F)`` features of 4 s windows (2 s hop): mean/std of heading-frame joint
    positions, pelvis height, joint speeds (mean, std, 90th percentile), acceleration/speed
    ratio (sharpness), fingertip-to-wrist distances, travel speed, turning speed."""
    n = joints.shape[0]
    if n < WINDOW:
        raise InputError(f"motion of {n} frames is shorter than one {WINDOW}-frame window")
    local = _heading_frame(joints)
    vel = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps  # (n-1, J)
    acc = np.linalg.norm(np.diff(joints, 2, axis=0), axis=-1) * fps * fps
    tips = np.linalg.norm(joints[:, _TIPS] - joints[:, np.repeat([20, 21], 5)], axis=-1)
    across = joints[:, 1] - joints[:, 2]
    yaw = np.unwrap(np.arctan2(-across[:, 2], across[:, 0]))
    out = []
    for s in range(0, n - WINDOW + 1, HOP):
        w = slice(s, s + WINDOW)
        wv = slice(s, s + WINDOW - 1)
        lj = local[w][:, _FEAT_JOINTS]
        v = vel[wv][:, _BODY]
        a = acc[s : s + WINDOW - 2][:, _BODY]
        root = joints[w, 0]
        out.append(np.concatenate([
            lj.mean(0).ravel(), lj.std(0).ravel(),
            [root[:, 1].mean(), root[:, 1].std()],
            v.mean(0), v.std(0), np.percentile(v, 90, axis=0),
            [a.mean() / max(v.mean(), 1e-6)],
            tips[w].mean(0), tips[w].std(0),
            [np.linalg.norm(root[-1, [0, 2]] - root[0, [0, 2]]) / (WINDOW / fps),
             np.abs(np.diff(yaw[w])).sum() / (WINDOW / fps)],
        ]))
    return np.asarray(out)


def arm_in_torso(joints: np.ndarray, glob: np.ndarray) -> float:
    """Fraction of frames with a wrist or elbow joint inside the torso: an elliptic cylinder
    about the chest (spine3) axis, half-width 15 cm, half-depth 11 cm (the wrists' keep-out
    cylinder minus the hand's and the arm's thickness)."""
    _, _, y0, y1 = TORSO_ELLIPSE
    rx, rz = TORSO_BODY
    rel = joints[:, [18, 19, 20, 21]] - joints[:, 9:10]
    local = np.einsum("tji,tkj->tki", glob[:, 9], rel)
    e = (local[..., 0] / rx) ** 2 + (local[..., 2] / rz) ** 2
    inside = (e < 1.0) & (local[..., 1] > y0) & (local[..., 1] < y1)
    return float(inside.any(axis=1).mean())


def file_report(raw: np.ndarray, beats_s: np.ndarray, wav: Path | None) -> dict[str, float]:
    """Metrics of one file (see the module docstring)."""
    joints, glob = joints_of(raw)
    n = joints.shape[0]
    beats = np.asarray(beats_s) * FINEDANCE_FPS
    beats = beats[beats < n - 1]
    period = float(np.median(np.diff(beats))) if beats.size > 1 else 15.0
    shifted = beats + period / 2
    shifted = shifted[shifted < n - 1]
    vel = body_speeds(joints)
    toe_floor = PLANT_HEIGHT + float(Skeleton.load("smplh52").offsets[10, 1])
    on_floor = joints[1:, [10, 11], 1] < toe_floor + 0.005
    hspeed = np.minimum(  # per foot, the slower of ankle and toe (PFC's convention)
        np.linalg.norm(np.diff(joints[:, [7, 8]][:, :, [0, 2]], axis=0), axis=-1),
        np.linalg.norm(np.diff(joints[:, [10, 11]][:, :, [0, 2]], axis=0), axis=-1),
    ) * FINEDANCE_FPS
    rep = {
        "pfc": pfc(joints),
        "skate": float(hspeed[on_floor].mean()) if on_floor.any() else 0.0,
        "bas": beat_align_score(joints, beats),
        "bas_shift": beat_align_score(joints, shifted) if shifted.size else 0.0,
        "speed_mean": float(vel.mean()),
        "speed_p99": float(np.percentile(vel, 99)),
        "arm_in": arm_in_torso(joints, glob),
    }
    if wav is not None:
        lib = music_beats_from_audio(str(wav), n_frames=n)
        rep["bas_lib"] = beat_align_score(joints, lib) if lib.size else float("nan")
    return rep


def logistic_regression(
    x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-2
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (L-BFGS, L2 on the weights): ``(W (F, C), b (C,))``."""
    from scipy.optimize import minimize

    n, f = x.shape
    onehot = np.eye(classes)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: f * classes].reshape(f, classes)
        b = theta[f * classes :]
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        val = -np.sum(onehot * np.log(p + 1e-12)) / n + 0.5 * l2 * np.sum(w * w)
        g = (p - onehot) / n
        return val, np.concatenate([(x.T @ g + l2 * w).ravel(), g.sum(axis=0)])

    res = minimize(loss, np.zeros(f * classes + classes), jac=True, method="L-BFGS-B",
                   options={"maxiter": 500})
    return res.x[: f * classes].reshape(f, classes), res.x[f * classes :]


def separability(
    train: list[tuple[np.ndarray, int]], test: list[tuple[np.ndarray, int]], classes: int
) -> dict[str, float]:
    """Top-1 accuracies of nearest-centroid and logistic regression (window level and per-file
    majority vote) trained on ``train`` feature sets ``(windows, F)`` with labels."""
    xtr = np.concatenate([f for f, _ in train])
    ytr = np.concatenate([np.full(len(f), g) for f, g in train])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr = (xtr - mu) / sd
    present = np.unique(ytr)
    cent = np.stack([xtr[ytr == c].mean(0) if c in present else np.full(xtr.shape[1], np.inf)
                     for c in range(classes)])
    w, b = logistic_regression(xtr, ytr, classes)
    out: dict[str, list[float]] = {"centroid": [], "logreg": [], "centroid_file": [],
                                   "logreg_file": []}
    for feats, g in test:
        xt = (feats - mu) / sd
        pc = np.argmin(((xt[:, None] - cent[None]) ** 2).sum(-1), axis=1)
        pl = np.argmax(xt @ w + b, axis=1)
        out["centroid"].extend((pc == g).tolist())
        out["logreg"].extend((pl == g).tolist())
        out["centroid_file"].append(float(np.bincount(pc, minlength=classes).argmax() == g))
        out["logreg_file"].append(float(np.bincount(pl, minlength=classes).argmax() == g))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m choreography.report",
                                description="Quality report of a choreography corpus.")
    p.add_argument("root", help="corpus folder (with corpus.json)")
    p.add_argument("--no-librosa-bas", action="store_true",
                   help="skip BAS against librosa's beat tracking of the wavs (faster)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    a = p.parse_args(argv)
    root = Path(a.root)
    try:
        manifest = json.loads((root / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: {root} has no readable corpus.json ({exc})", file=sys.stderr)
        return 2
    per_genre: dict[str, list[dict[str, float]]] = {}
    feats: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "test": []}
    try:
        for f in manifest["files"]:
            name = f["name"]
            raw = read_finedance_motion(root / "motion" / f"{name}.npy")
            label = read_finedance_label(root / "label_json" / f"{name}.json")
            beats = json.loads((root / "label_json" / f"{name}.json").read_text())["beats"]
            wav = None if a.no_librosa_bas else root / "music_wav" / f"{name}.wav"
            per_genre.setdefault(label.genre, []).append(file_report(raw, np.array(beats), wav))
            if raw.shape[0] >= WINDOW:
                feats[f["split"]].append((motion_features(joints_of(raw)[0]), label.genre_id))
    except (GCDanceError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = ["pfc", "skate", "bas", "bas_shift", "bas_lib", "speed_mean", "speed_p99", "arm_in"]
    heads = ["PFC", "skate m/s", "BAS", "BAS_shift", "BAS_lib", "speed", "speed_p99", "arm_in%"]
    if a.no_librosa_bas:
        keys.remove("bas_lib")
        heads.remove("BAS_lib")
    print(f"{'genre':13s} {'files':>5s} " + " ".join(f"{h:>9s}" for h in heads))
    summary: dict[str, dict[str, float]] = {}
    for g in FINEDANCE_GENRES:
        if g not in per_genre:
            continue
        rows = per_genre[g]
        summary[g] = {k: float(np.nanmean([r.get(k, np.nan) for r in rows])) for k in keys}
        vals = [summary[g][k] * (100 if k == "arm_in" else 1) for k in keys]
        print(f"{g:13s} {len(rows):5d} " + " ".join(f"{v:9.4f}" for v in vals))
    allrows = [r for rows in per_genre.values() for r in rows]
    mean = {k: float(np.nanmean([r.get(k, np.nan) for r in allrows])) for k in keys}
    print(f"{'ALL':13s} {len(allrows):5d} " + " ".join(
        f"{mean[k] * (100 if k == 'arm_in' else 1):9.4f}" for k in keys))
    result: dict[str, object] = {"genres": summary, "all": mean}
    if feats["train"] and feats["test"]:
        sep = separability(feats["train"], feats["test"], len(FINEDANCE_GENRES))
        n_tr = sum(len(f) for f, _ in feats["train"])
        n_te = sum(len(f) for f, _ in feats["test"])
        print(f"\ngenre separability ({n_tr} train / {n_te} held-out-track windows of "
              f"{WINDOW} frames, {len(per_genre)} genres):")
        for label, k in (("nearest centroid   ", "centroid"), ("logistic regression", "logreg")):
            print(f"  {label}  top-1 {sep[k]:.3f} (per-file vote {sep[k + '_file']:.3f})")
        result["separability"] = sep
    else:
        print("\nseparability: needs files of >= 4 s in both splits", file=sys.stderr)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (DataFormatError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
