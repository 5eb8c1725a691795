"""Procedural choreography corpus (choreography): format, determinism, physics, beats,
genre separability. Music is synthesized click tracks, so no music package is needed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from choreography import FAMILIES, GENRE_STYLES, dance_for_music, generate_corpus
from choreography.__main__ import main as cli_main
from choreography.hands import hand_axis_angles
from choreography.report import arm_in_torso, joints_of, motion_features, separability
from choreography.synth import PLANT_HEIGHT
from gcdance.conditioning.genres import FINEDANCE_GENRES
from gcdance.datasets.finedance import FineDanceDataset
from gcdance.errors import InputError
from gcdance.metrics import beat_align_score
from gcdance.motion.layout import FINEDANCE
from gcdance.motion.rotation import matrix_to_axis_angle, rotation_6d_to_matrix
from gcdance.motion.skeleton import Skeleton
from gcdance.sampling.windows import make_windows

SKEL = Skeleton.load("smplh52")
FPS = 30


def _click_track(path: Path, bpm: float, seconds: float, sr: int = 8000) -> Path:
    """A 16-bit wav of decaying noise bursts on every beat (a steady, trackable pulse)."""
    import soundfile as sf

    rng = np.random.default_rng(int(bpm))
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = (rng.standard_normal(int(0.05 * sr)) * np.exp(-np.linspace(0, 8, int(0.05 * sr))))
    for k, t in enumerate(np.arange(0.25, seconds - 0.1, 60.0 / bpm)):
        i = int(t * sr)
        amp = 0.8 if k % 4 == 0 else 0.5
        y[i : i + burst.size] += amp * burst[: y.size - i].astype(np.float32)
    sf.write(str(path), y, sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def click_tracks(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("music")
    return [f"{_click_track(d / f'click{b}.wav', b, 24.0)}@{b}" for b in (96, 110, 128)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, click_tracks: list[str]) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, 25.0, seed=3, tracks=click_tracks, sample_rate=8000, log=lambda *_: None)
    return out


def _beats(bpm: float, seconds: float, phase: float = 0.1) -> np.ndarray:
    return np.arange(phase, seconds + 1.0, 60.0 / bpm)


def test_corpus_loads_through_finedance_reader(corpus: Path) -> None:
    import soundfile as sf

    manifest = json.loads((corpus / "corpus.json").read_text())
    assert manifest["split"]["test"] == ["file/click128"]  # every 5th by tempo, from the 3rd
    for split in ("train", "test"):
        ds = FineDanceDataset(corpus, split)
        assert len(ds) == 16
        assert sorted(s.genre for s in ds) == sorted(FINEDANCE_GENRES)
        for seq in ds:
            assert seq.fps == FPS and seq.motion.shape[1] == 319
            assert seq.style1 == FAMILIES[seq.genre]
            info = sf.info(str(seq.music_path))
            assert abs(info.duration - seq.num_frames / FPS) < 0.05
            label = json.loads((corpus / "label_json" / f"{seq.name}.json").read_text())
            tracks = {s["track"] for s in label["segments"]}
            assert tracks <= set(manifest["split"][split])
        expected = 20.0 if split == "train" else 5.0
        assert all(abs(s.seconds - expected) < 1.5 for s in ds)
    assert {f["style1"] for f in manifest["files"]} == {"Street", "Folk", "Classic", "Mix"}
    assert "MIT" in (corpus / "README.md").read_text() or "user-supplied" in (
        corpus / "README.md").read_text()


def test_motion_is_finite_with_valid_rotations(corpus: Path) -> None:
    for f in sorted((corpus / "motion").glob("*.npy")):
        raw = np.load(f)
        assert raw.dtype == np.float32 and raw.shape[1] == 315 and np.isfinite(raw).all()
        rows = raw[:, 3:].astype(np.float64).reshape(-1, 52, 2, 3)
        np.testing.assert_allclose(np.linalg.norm(rows, axis=-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.sum(rows[..., 0, :] * rows[..., 1, :], -1), 0.0, atol=1e-5)
        rot = rotation_6d_to_matrix(raw[:, 3:].astype(np.float64).reshape(-1, 52, 6))
        np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-6)


def test_deterministic_for_a_seed(tmp_path: Path, click_tracks: list[str]) -> None:
    kw = dict(tracks=click_tracks[:2], genres=["Popping", "Kun"], sample_rate=8000,
              log=lambda *_: None)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_corpus(a, 12.0, seed=7, **kw)
    generate_corpus(b, 12.0, seed=7, **kw)
    generate_corpus(c, 12.0, seed=8, **kw)
    names = sorted(p.name for p in (a / "motion").iterdir())
    assert names and names == sorted(p.name for p in (b / "motion").iterdir())
    for sub in ("motion", "music_wav", "label_json"):
        for p in (a / sub).iterdir():
            assert p.read_bytes() == (b / sub / p.name).read_bytes(), p
    for name in ("corpus.json", "README.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert any((a / "motion" / n).read_bytes() != (c / "motion" / n).read_bytes() for n in names)
    with pytest.raises(InputError, match="already holds a corpus"):
        generate_corpus(a, 12.0, seed=7, **kw)
    # Overwriting with fewer genres leaves no stale files of the earlier corpus behind.
    generate_corpus(a, 12.0, seed=7, overwrite=True, **{**kw, "genres": ["Kun"]})
    assert {s.genre for s in FineDanceDataset(a, "all")} == {"Kun"}
    foreign = tmp_path / "foreign"
    (foreign / "motion").mkdir(parents=True)
    (foreign / "motion" / "001.npy").write_bytes(b"")
    with pytest.raises(InputError, match="not a generated corpus"):
        generate_corpus(foreign, 12.0, seed=7, **kw)


@pytest.mark.parametrize("genre", FINEDANCE_GENRES)
def test_planted_feet_do_not_slide_and_legs_are_valid(genre: str) -> None:
    style = GENRE_STYLES[FINEDANCE_GENRES.index(genre)]
    raw, info = dance_for_music(_beats(104, 20), 20.0, style, np.random.default_rng(1))
    joints, _ = joints_of(raw)
    flat = info["rise"] < 1e-6
    toe_height = PLANT_HEIGHT + SKEL.offsets[10, 1]
    for foot, (ankle, toe) in (("L", (7, 10)), ("R", (8, 11))):
        planted = info["planted"][foot]
        both = planted[1:] & planted[:-1]
        assert both.mean() > 0.3  # feet do support the body
        # The ball of a planted foot never moves (also in a relevé); the ankle only rises.
        step = np.linalg.norm(np.diff(joints[:, toe], axis=0), axis=-1)
        assert step[both].max() < 1e-4, f"{genre}: toe {toe} slides while planted"
        step = np.linalg.norm(np.diff(joints[:, ankle, [0, 2]], axis=0), axis=-1)
        assert step[both & flat[1:] & flat[:-1]].max() < 1e-4, f"{genre}: ankle slides"
        # Planted feet are on the floor (the IK reached them).
        np.testing.assert_allclose(joints[planted, toe, 1], toe_height, atol=2e-3)
        np.testing.assert_allclose(joints[planted & flat, ankle, 1], PLANT_HEIGHT, atol=2e-3)
    # Never both feet in the air; nothing below the floor.
    assert (info["planted"]["L"] | info["planted"]["R"]).all()
    assert joints[:, :22, 1].min() > 0.0
    # Knees only flex (rotation about +X, no hyperextension, no twist).
    rot = rotation_6d_to_matrix(raw[:, 3:].astype(np.float64).reshape(-1, 52, 6))
    for knee in (4, 5):
        aa = matrix_to_axis_angle(rot[:, knee])
        assert aa[:, 0].min() > -0.02 and np.abs(aa[:, 1:]).max() < 0.05
    # Balance: the pelvis stays over the support: near the segment between the planted ankles
    # (or the one planted ankle).
    pelvis = joints[:, 0, [0, 2]]
    lft, rgt = joints[:, 7, [0, 2]], joints[:, 8, [0, 2]]
    pl, pr = info["planted"]["L"], info["planted"]["R"]
    seg = rgt - lft
    u = np.clip(np.sum((pelvis - lft) * seg, -1) / np.maximum(np.sum(seg * seg, -1), 1e-9), 0, 1)
    u = np.where(pl & pr, u, np.where(pl, 0.0, 1.0))
    dist = np.linalg.norm(pelvis - (lft + u[:, None] * seg), axis=-1)
    assert dist.max() < 0.16, f"{genre}: pelvis {dist.max():.2f} m off the support"


@pytest.mark.slow
def test_accents_align_with_beats() -> None:
    """BAS against the grid the dance was made on beats a half-beat-shifted grid, per genre."""
    bpm, seconds = 100.0, 30.0
    beats = _beats(bpm, seconds)
    scores, controls = [], []
    for style in GENRE_STYLES:
        raw, _ = dance_for_music(beats, seconds, style, np.random.default_rng(5))
        joints, _ = joints_of(raw)
        frames = beats[beats * FPS < len(joints) - 1] * FPS
        bas = beat_align_score(joints, frames)
        ctrl = beat_align_score(joints, frames + 0.5 * 60.0 / bpm * FPS)
        assert bas > ctrl + 0.1, style.name
        scores.append(bas)
        controls.append(ctrl)
    assert np.mean(scores) > 0.6 and np.mean(controls) < 0.3


@pytest.mark.slow
def test_genres_are_separable_on_new_music() -> None:
    """Nearest-centroid/logistic classifiers on simple motion features, trained on dances to
    one tempo and seed, tested on another tempo and seed."""
    train, test = [], []
    for gid, style in enumerate(GENRE_STYLES):
        for bpm, seed, bucket in ((96, 0, train), (120, 1, test)):
            raw, _ = dance_for_music(_beats(bpm, 24), 24.0, style, np.random.default_rng(seed))
            bucket.append((motion_features(joints_of(raw)[0]), gid))
    acc = separability(train, test, len(GENRE_STYLES))
    assert acc["logreg"] >= 0.7, acc
    assert acc["centroid"] >= 0.5, acc
    # And two genres of different families are far apart in feature space.
    pop, kun = test[1][0].mean(0), test[11][0].mean(0)
    pop2 = train[1][0].mean(0)
    assert np.linalg.norm(pop - pop2) < np.linalg.norm(pop - kun)


def test_training_windows_pass_the_motion_filter(corpus: Path) -> None:
    """The training pipeline keeps a 4 s window only when its mean per-dim std > 0.07 (a
    mocap-era filter of static clips): most windows of every genre must pass it."""
    kept: dict[str, list[float]] = {}
    for seq in FineDanceDataset(corpus, "all"):
        n_all = len(make_windows(seq.motion, FINEDANCE, min_std=None).starts)
        n_kept = len(make_windows(seq.motion, FINEDANCE).starts)
        if n_all:
            kept.setdefault(seq.genre, []).append(n_kept / n_all)
    assert len(kept) == 16
    for genre, fractions in kept.items():
        assert np.mean(fractions) >= 0.6, (genre, fractions)


@pytest.mark.slow
def test_limbs_do_not_interpenetrate() -> None:
    """Wrists/elbows stay out of the torso; the knees never meet (legs do not pass through
    each other); hands do not pass through the head."""
    for style in GENRE_STYLES:
        raw, _ = dance_for_music(_beats(110, 20), 20.0, style, np.random.default_rng(2))
        joints, glob = joints_of(raw)
        assert arm_in_torso(joints, glob) < 0.01, style.name
        knees = np.linalg.norm(joints[:, 4] - joints[:, 5], axis=-1)
        assert knees.min() > 0.06, (style.name, knees.min())
        head = np.linalg.norm(joints[:, [20, 21]] - joints[:, 15:16], axis=-1)
        assert head.min() > 0.08, (style.name, head.min())


def test_hand_shapes_differ_and_mirror() -> None:
    fist, flat = hand_axis_angles("fist", "L"), hand_axis_angles("flat", "L")
    assert np.abs(fist - flat).max() > 1.0
    right = hand_axis_angles("orchid", "R")
    left = hand_axis_angles("orchid", "L")
    np.testing.assert_allclose(right[:, 0], left[:, 0])
    np.testing.assert_allclose(right[:, 1:], -left[:, 1:])
    # Curling fingers brings the fingertips towards the wrist.
    rot = np.broadcast_to(np.eye(3), (2, 52, 3, 3)).copy()
    from gcdance.motion.rotation import axis_angle_to_matrix

    rot[0, 22:37] = axis_angle_to_matrix(fist)
    rot[1, 22:37] = axis_angle_to_matrix(flat)
    j = SKEL.forward_kinematics(rot, np.zeros((2, 3)))
    tip = np.linalg.norm(j[:, 24] - j[:, 20], axis=-1)  # left index tip to wrist
    assert tip[0] < tip[1] - 0.04


def test_errors_and_cli(tmp_path: Path, click_tracks: list[str]) -> None:
    with pytest.raises(InputError, match="unknown genre"):
        generate_corpus(tmp_path / "x", 20.0, genres=["Salsa"], tracks=click_tracks[:1],
                        log=lambda *_: None)
    with pytest.raises(InputError, match="seconds_per_genre"):
        generate_corpus(tmp_path / "y", 3.0, tracks=click_tracks[:1], log=lambda *_: None)
    with pytest.raises(InputError, match="does not exist"):
        generate_corpus(tmp_path / "z", 20.0, tracks=[str(tmp_path / "nope.wav@120")],
                        log=lambda *_: None)
    out = tmp_path / "cli"
    code = cli_main(["--out", str(out), "--seconds-per-genre", "10", "--seed", "1",
                     "--genres", "Dai", "--sample-rate", "8000", "--tracks", click_tracks[0]])
    assert code == 0
    assert FineDanceDataset(out, "all")[0].genre == "Dai"
    assert cli_main(["--out", str(out), "--seconds-per-genre", "10", "--genres", "Dai",
                     "--tracks", click_tracks[0]]) == 2  # exists, no --overwrite


def test_two_bone_ik_reaches_with_a_true_hinge() -> None:
    from choreography.kinematics import two_bone_ik

    rng = np.random.default_rng(0)
    off = SKEL.offsets
    n = 200
    base = rng.normal(size=(n, 3))
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    target = base + direction * rng.uniform(0.3, 0.7, size=(n, 1))  # within reach of a leg
    pole = rng.normal(size=(n, 3))
    g_up, g_lo, end = two_bone_ik(base, target, pole, off[4], off[7], np.array([1.0, 0, 0]))
    knee = base + np.einsum("nij,j->ni", g_up, off[4])
    ankle = knee + np.einsum("nij,j->ni", g_lo, off[7])
    np.testing.assert_allclose(ankle, target, atol=1e-9)
    np.testing.assert_allclose(end, target, atol=1e-9)
    local = np.swapaxes(g_up, -1, -2) @ g_lo
    aa = matrix_to_axis_angle(local)
    np.testing.assert_allclose(aa[:, 1:], 0.0, atol=1e-9)  # hinge about X only
    assert aa[:, 0].min() > 0.0  # flexion, never hyperextension
    # The knee bends towards the pole.
    mid = 0.5 * (base + target)
    w = pole - np.sum(pole * direction, axis=1, keepdims=True) * direction
    assert np.all(np.sum((knee - mid) * w, axis=1) > 0)


def test_key_interpolation_rests_on_keys() -> None:
    from choreography.kinematics import interp_keys

    keys = np.array([0.0, 0.5, 1.0, 2.0])
    vals = np.array([[0.0], [1.0], [-1.0], [2.0]])
    t = np.arange(0, 2.0 + 1e-9, 1 / 300)
    out = interp_keys(t, keys, vals, widths=np.array([1.0, 1.0, 0.3, 1.0]))[:, 0]
    idx = np.round(keys * 300).astype(int)
    np.testing.assert_allclose(out[idx], vals[:, 0], atol=1e-9)
    vel = np.gradient(out, t)
    assert np.abs(vel[idx[1:-1]]).max() < 1e-2 * np.abs(vel).max()
    # A sharp key (width 0.3) holds still around its neighbours' keys.
    hold = (t > 0.5) & (t < 0.5 + 0.5 * 0.35)
    np.testing.assert_allclose(out[hold], 1.0, atol=1e-12)


def test_clip_beats_cut_and_shift() -> None:
    from choreography.evaluate_model import clip_beats

    beats = np.arange(0.0, 20.0, 0.5)  # 120 BPM: a beat every 15 frames
    inside, shifted = clip_beats(beats, start=4.2, frames=120)
    # beats at 4.5, 5.0, ... s -> frames 9, 24, ...; all below frame 119
    np.testing.assert_allclose(inside, np.arange(9.0, 119.0, 15.0))
    # half a period later; the beat at 4.0 s (before the clip) shifts to 4.25 s = frame 1.5
    np.testing.assert_allclose(shifted, np.arange(1.5, 119.0, 15.0))
    with pytest.raises(InputError, match="fewer than two beats"):
        clip_beats(beats, start=30.0, frames=120)


def test_post_process_effects_are_paired_differences_with_bootstrap_intervals() -> None:
    """The effect of a post-process is the mean of per-dance differences: an effect that every
    dance shares is certain however noisy the dances are, one of random sign is not."""
    from choreography.evaluate_model import post_process_effects

    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, 200)  # dances differ a lot from each other
    noise = rng.normal(0.0, 0.01, 200)

    def rows(bas: np.ndarray, speed: np.ndarray) -> list[dict[str, float]]:
        return [{"bas": b, "bas_shift": 0.1, "speed": v, "pfc": 0.0, "slide": 0.0,
                 "genre": 1.0, "genre_window": 1.0} for b, v in zip(bas, speed, strict=True)]

    scores = {"generated": rows(base + 0.01, base),
              "generated_no_foot_lock": rows(base, base + noise),
              "generated_no_beat_sync": rows(base, base)}
    lock = post_process_effects(scores)["foot_lock"]
    assert lock["dances"] == 200
    gap = lock["bas_gap"]  # +0.01 on every dance: certain
    assert gap["mean"] == pytest.approx(0.01) and gap["low"] == pytest.approx(0.01)
    assert (gap["higher"], gap["lower"]) == (200, 0)
    speed = lock["speed"]  # noise only: the interval holds 0
    assert speed["low"] < 0 < speed["high"] and speed["high"] - speed["low"] < 0.01
    assert lock["genre"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "higher": 0, "lower": 0}
    assert post_process_effects(scores) == post_process_effects(scores)  # seeded
    assert "beat_sync" not in post_process_effects({**scores, "generated_no_beat_sync": []})


def test_motion_genre_classifier_separates_genres_and_judges_a_dance() -> None:
    """Fitted on dances of three genres to one tempo, it recognises each genre to another tempo
    and seed (per window and per dance)."""
    from choreography.evaluate_model import MotionGenreClassifier

    picked = [GENRE_STYLES[i] for i in (1, 6, 11)]
    train = [(motion_features(joints_of(dance_for_music(_beats(96, 16), 16.0, s,
                                                        np.random.default_rng(0))[0])[0]), g)
             for g, s in enumerate(picked)]
    clf = MotionGenreClassifier.fit(train, [s.name for s in picked])
    for g, s in enumerate(picked):
        raw, _ = dance_for_music(_beats(120, 12), 12.0, s, np.random.default_rng(1))
        windows, verdict = clf.judge(joints_of(raw)[0])
        assert verdict == g, s.name
        assert np.mean(windows == g) >= 0.6, s.name
    with pytest.raises(InputError, match="no training dances"):
        MotionGenreClassifier.fit([], ["Jazz"])


def test_a_default_corpus_without_a_music_source_says_so(
        tmp_path: Path, click_tracks: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Debian's sonic-pi-samples ``python -m choreography`` still builds a corpus, but
    not the default one (other held-out files, other numbers): it must say so."""
    import choreography.corpus as corpus_mod
    from choreography.corpus import missing_catalogue_sources, select_tracks

    clicks = select_tracks(click_tracks[:2])
    immich_like = [dataclasses.replace(t, id=f"immich/{t.id}") for t in clicks]
    sonic_like = [dataclasses.replace(t, id=f"sonicpi/{t.id}") for t in clicks]
    assert missing_catalogue_sources(immich_like + sonic_like) == []
    (missing,) = missing_catalogue_sources(immich_like)
    assert missing == ("Debian's sonic-pi-samples", "apt-get install sonic-pi-samples")
    assert [s for s, _ in missing_catalogue_sources([])] == [
        "immich-memories-music", "Debian's sonic-pi-samples"]

    monkeypatch.setattr(corpus_mod, "select_tracks", lambda patterns: immich_like)
    lines: list[str] = []
    generate_corpus(tmp_path / "c", 12.0, seed=1, genres=["Kun"], sample_rate=8000,
                    log=lines.append)
    (warning,) = [line for line in lines if line.startswith("warning:")]
    assert "sonic-pi-samples" in warning and "apt-get install" in warning
    # tracks chosen by the user: their corpus is theirs, nothing to warn about
    lines.clear()
    monkeypatch.setattr(corpus_mod, "select_tracks", lambda patterns: clicks)
    generate_corpus(tmp_path / "d", 12.0, seed=1, tracks=click_tracks[:2], genres=["Kun"],
                    sample_rate=8000, log=lines.append)
    assert not [line for line in lines if line.startswith("warning:")]
