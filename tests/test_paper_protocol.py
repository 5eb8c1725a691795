"""The paper's evaluation protocol end to end (gcdance.evaluation.protocol): a tiny FineDance-
and AIST++-format folder, a random tiny bundle, the command run, Table I / II printed."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")
sf = pytest.importorskip("soundfile")

from gcdance.errors import DataFormatError, InputError  # noqa: E402
from gcdance.evaluation import protocol as pr  # noqa: E402

SR = 22050
TABLE_I = ("FID_hand", "FID_body", "FID_k", "FID_g", "Div_hand", "Div_body", "Div_k", "Div_g",
           "PFC", "PBC", "PBC_PopDG", "BAS")


def _clicks(seconds: float, bpm: float = 120.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    y = 0.2 * np.sin(2 * np.pi * 110 * t)
    for beat in np.arange(0, seconds, 60.0 / bpm):
        i = int(beat * SR)
        y[i : i + 400] += np.hanning(800)[400:][: len(y) - i] * np.sin(2 * np.pi * 2000 * t[:400])[
            : len(y) - i]
    return y.astype(np.float32)


def _finedance(root: Path, names: list[str], frames: int, rng: np.random.Generator) -> Path:
    """FineDance files in the real format: motion (T, 315), label_json, music_wav."""
    for sub in ("motion", "label_json", "music_wav"):
        (root / sub).mkdir(parents=True)
    identity6d = np.tile([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 52)
    for name, style in zip(names, ("Popping", "Jazz", "Breaking")[: len(names)], strict=True):
        raw = np.zeros((frames, 315), dtype=np.float32)
        raw[:, :3] = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0) + np.array([0, 0.9, 0])
        raw[:, 3:] = identity6d + rng.normal(0, 0.05, (frames, 312))
        np.save(root / "motion" / f"{name}.npy", raw)
        label = {"style1": "Street", "style2": style}
        (root / "label_json" / f"{name}.json").write_text(json.dumps(label))
        sf.write(root / "music_wav" / f"{name}.wav", _clicks(frames / 30), SR)
    return root


def _aistpp(root: Path, names: list[str], frames60: int, rng: np.random.Generator,
            others: tuple[str, ...] = (), ignored: tuple[str, ...] = ()) -> Path:
    """AIST++ files in the real format: motions/*.pkl, splits/crossmodal_test.txt (``names``),
    ignore_list.txt (``ignored``), all_musics/*.wav; ``others``: sequences outside the test
    split."""
    (root / "motions").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "all_musics").mkdir()
    for name in (*names, *others, *ignored):
        data = {
            "smpl_poses": rng.normal(scale=0.3, size=(frames60, 72)),
            "smpl_trans": np.cumsum(rng.normal(scale=1.0, size=(frames60, 3)), axis=0)
            + np.array([0, 90, 0]),
            "smpl_scaling": np.array([93.0]),
            "smpl_loss": np.float64(1.5),
        }
        with open(root / "motions" / f"{name}.pkl", "wb") as f:
            pickle.dump(data, f, protocol=4)
        music = name.split("_")[4]
        sf.write(root / "all_musics" / f"{music}.wav", _clicks(frames60 / 60), SR)
    (root / "splits" / "crossmodal_test.txt").write_text("\n".join(names) + "\n")
    (root / "ignore_list.txt").write_text("".join(f"{n}\n" for n in ignored))
    return root


@pytest.fixture(scope="module")
def finedance_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.bundle import random_bundle

    return random_bundle(tmp_path_factory.mktemp("b") / "fd", "tiny", seed=0,
                         check_shapes=((2, 8),))


def test_finedance_protocol_prints_table_one(tmp_path, finedance_bundle, capsys):
    # The paper's set: 15 clips of 4 s per test song, 10 rounds, every column, the clips as GT.
    assert pr.PROTOCOLS["finedance"] == pr.ProtocolSpec(4.0, 15, 10, None, "clips")
    rng = np.random.default_rng(0)
    root = _finedance(tmp_path / "finedance", ["012", "036", "001"], 200, rng)  # 001: train
    out = tmp_path / "eval"
    argv = ["--data", str(root), "--bundle", str(finedance_bundle), "-o", str(out),
            "--rounds", "2", "--clips-per-song", "2", "--steps", "2", "--provider", "cpu",
            "--quiet"]
    assert pr.main(argv) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    for column in TABLE_I:
        assert f"| {column}" in header, column
    assert "| GT |" in table and "| GCDance |" in table and "±" in table
    result = json.loads((out / "table.json").read_text())
    assert result["generated"]["n_rounds"] == 2
    assert result["ground_truth"]["n_clips"] == 4  # 2 test songs x 2 clips; 001 is training
    assert result["protocol"]["n_clips"] == 4
    # Clip starts: first and last full 4 s clip inside 200 frames of motion and music.
    assert sorted(p.stem for p in (out / "real").glob("*.npz")) == [
        "012@0", "012@80", "036@0", "036@80"]
    for key in TABLE_I:
        assert key in result["generated"]["mean"], key
        assert np.isfinite(result["generated"]["std"][key])
    with np.load(out / "generated" / "round_01" / "036@80.npz") as dance:
        assert dance["joints"].shape == (120, 52, 3)
        assert dance["music_beats"].size > 0  # 120 bpm clicks: beats inside every 4 s clip
    # PopDG's sign: upper - feet = PBC - 2 PFC, per dance and hence per round.
    for r in result["generated"]["rounds"]:
        assert r["PBC_PopDG"] == pytest.approx(r["PBC"] - 2 * r["PFC"])

    # A rerun keeps the dances (resume); other settings in the same folder are refused.
    before = (out / "generated" / "round_00" / "012@0.npz").stat().st_mtime_ns
    assert pr.main(argv) == 0
    assert (out / "generated" / "round_00" / "012@0.npz").stat().st_mtime_ns == before
    capsys.readouterr()
    assert pr.main([*argv, "--seed", "5"]) == 2
    assert "other settings (seed)" in capsys.readouterr().err


def test_reference_compat_is_selectable(tmp_path, finedance_bundle):
    rng = np.random.default_rng(1)
    root = _finedance(tmp_path / "finedance", ["012", "036"], 130, rng)
    results = {}
    for mode in ("off", "geometric", "kinetic"):
        results[mode] = pr.run_protocol(
            "finedance", root, finedance_bundle, tmp_path / "eval", rounds=1,
            clips_per_song=1, steps=2, provider="cpu", reference_compat=mode)
    assert results["geometric"]["config"]["reference_geometric"] is True
    assert results["geometric"]["config"]["reference_compat"] is False
    assert "1/120 s" in pr.markdown_table(results["geometric"])
    # Same dances (resumed), same kinetic features; only the geometric ones change.
    off, geo = results["off"]["generated"]["mean"], results["geometric"]["generated"]["mean"]
    assert off["FID_k"] == geo["FID_k"] and off["FID_hand"] == geo["FID_hand"]
    assert off["FID_g"] != geo["FID_g"]
    # The kinetic one: the kinetic features change, the geometric ones do not.
    kin = results["kinetic"]["generated"]["mean"]
    assert results["kinetic"]["config"]["reference_compat"] is True
    assert results["kinetic"]["config"]["reference_geometric"] is False
    assert off["FID_g"] == kin["FID_g"] and off["FID_k"] != kin["FID_k"]


def test_aistpp_protocol_prints_bailando_columns(tmp_path, capsys):
    from export.bundle import random_bundle

    bundle = random_bundle(tmp_path / "aist_bundle", "tiny", seed=0, layout="aistpp",
                           check_shapes=((2, 8),))
    rng = np.random.default_rng(2)
    names = ["gBR_sBM_cAll_d04_mBR0_ch01", "gJS_sFM_cAll_d01_mJS3_ch02"]
    others = ("gBR_sFM_cAll_d05_mBR0_ch03", "gJS_sBM_cAll_d02_mJS3_ch04")  # training sequences
    ignored = ("gJS_sFM_cAll_d03_mJS3_ch05",)
    root = _aistpp(tmp_path / "aist", names, 560, rng, others, ignored)
    # Bailando's 20 s, one round, ground truth every sequence whole; 4 s keeps this quick.
    assert pr.PROTOCOLS["aistpp"] == pr.ProtocolSpec(
        20.0, 0, 1, ("FID_k", "FID_g", "Div_k", "Div_g", "BAS"), "all")
    out = tmp_path / "eval"
    argv = ["--protocol", "aistpp", "--data", str(root), "--bundle", str(bundle),
            "-o", str(out), "--clip-seconds", "4", "--rounds", "2", "--steps", "2",
            "--provider", "cpu", "--quiet"]
    assert pr.main(argv) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "| Method | FID_k↓ | FID_g↓ | Div_k↑ | Div_g↑ | BAS↑ |"
    result = json.loads((out / "table.json").read_text())
    # The real set: the 4 sequences not ignored, each whole (560 frames at 60 fps = 280).
    assert result["ground_truth"]["n_clips"] == 4 and result["protocol"]["n_real"] == 4
    assert sorted(p.stem for p in (out / "real").glob("*.npz")) == sorted(
        f"{n}@0" for n in (*names, *others))
    with np.load(out / "real" / f"{others[0]}@0.npz") as real:
        assert real["joints"].shape == (280, 24, 3) and real["music_beats"].size > 0
    with np.load(out / "generated" / "round_00" / f"{names[0]}@0.npz") as dance:
        assert dance["joints"].shape == (120, 24, 3)
    # --real clips: the test clips themselves, as in Table I; the dances are kept (resume).
    before = (out / "generated" / "round_00" / f"{names[0]}@0.npz").stat().st_mtime_ns
    assert pr.main([*argv, "--real", "clips"]) == 0
    assert (out / "generated" / "round_00" / f"{names[0]}@0.npz").stat().st_mtime_ns == before
    capsys.readouterr()
    result = json.loads((out / "table.json").read_text())
    assert result["ground_truth"]["n_clips"] == 2 and result["protocol"]["real_set"] == "clips"
    assert sorted(p.stem for p in (out / "real").glob("*.npz")) == sorted(
        f"{n}@0" for n in names)
    # Bailando's 20 s from the start; a shorter sequence (AIST++ basic dances) is kept whole.
    assert pr._clip_spans(280, 600, 0, "gBR") == [(0, 280)]
    assert pr._clip_spans(900, 600, 0, "gBR") == [(0, 600)]


def test_clear_errors(tmp_path, finedance_bundle):
    rng = np.random.default_rng(3)
    root = _finedance(tmp_path / "short", ["012", "036"], 90, rng)  # shorter than a 4 s clip
    with pytest.raises(DataFormatError, match="fewer than one clip of 120"):
        pr.run_protocol("finedance", root, finedance_bundle, tmp_path / "o", provider="cpu")
    with pytest.raises(InputError, match="unknown protocol"):
        pr.run_protocol("edge", root, finedance_bundle, tmp_path / "o")
    with pytest.raises(DataFormatError, match="crossmodal_test"):
        pr.run_protocol("aistpp", tmp_path, finedance_bundle, tmp_path / "o")
    with pytest.raises(InputError, match="'all' with aistpp"):
        pr.run_protocol("finedance", root, finedance_bundle, tmp_path / "o", real_set="all")
    aist = _aistpp(tmp_path / "aist", ["gBR_sBM_cAll_d04_mBR0_ch01"], 300, rng)
    (aist / "ignore_list.txt").unlink()
    with pytest.raises(DataFormatError, match="no AIST\\+\\+ ignore list"):
        pr.aistpp_ground_truth(aist)
