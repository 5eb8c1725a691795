"""FineDance and AIST++ readers on small files written here in the data sets' formats."""

from __future__ import annotations

import json
import pickle
import wave
from pathlib import Path

import numpy as np
import pytest

from gcdance.conditioning.genres import AISTPP_GENRES, FINEDANCE_GENRES
from gcdance.datasets import (
    AISTPPDataset,
    FineDanceDataset,
    aistpp_music_tempo,
    finedance_genre_id,
    finedance_split,
    load_aistpp_pickle,
    parse_sequence_name,
    read_split_file,
)
from gcdance.errors import DataFormatError, InputError
from gcdance.motion.rotation import (
    axis_angle_to_matrix,
    axis_angle_to_rotation_6d,
    rotation_6d_to_matrix,
)


def _write_wav(path: Path, seconds: float = 1.0, sr: int = 15360) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.zeros(int(seconds * sr), np.int16).tobytes())


def _finedance_raw(rng: np.random.Generator, t: int) -> np.ndarray:
    aa = rng.normal(scale=0.4, size=(t, 52, 3))
    trans = np.cumsum(rng.normal(scale=0.01, size=(t, 3)), axis=0) + np.array([0.0, 1.0, 0.0])
    return np.concatenate([trans, axis_angle_to_rotation_6d(aa).reshape(t, 312)], 1).astype(
        np.float32
    )


def _write_finedance(root: Path, name: str, raw: np.ndarray, style2: str | None = "Popping",
                     music: bool = True) -> None:
    (root / "motion").mkdir(parents=True, exist_ok=True)
    (root / "label_json").mkdir(parents=True, exist_ok=True)
    np.save(root / "motion" / f"{name}.npy", raw)
    if style2 is not None:
        label = {"name": name, "style1": "Street", "style2": style2}
        (root / "label_json" / f"{name}.json").write_text(json.dumps(label))
    if music:
        _write_wav(root / "music_wav" / f"{name}.wav")


# ------------------------------------------------------------------------------------ FineDance
def test_finedance_splits():
    train, test = finedance_split("train"), finedance_split("test")
    assert len(test) == 18 and len(train) == 183
    assert not set(train) & set(test)
    ignored = {"116", "117", "118", "119", "120", "121", "122", "123", "130", "202"}
    assert not (set(train) | set(test)) & ignored
    assert {"063", "211", "012", "144"} <= set(test) and "001" in train and "210" in train
    assert len(finedance_split("all")) == 201
    with pytest.raises(InputError, match="train"):
        finedance_split("val")  # type: ignore[arg-type]


def test_finedance_genre_labels():
    assert finedance_genre_id("Popping") == 1
    assert finedance_genre_id("hantang") == FINEDANCE_GENRES.index("HanTang")
    assert finedance_genre_id(" Han Tang ") == 9 and finedance_genre_id("Hip-hop") == 3
    assert finedance_genre_id("dun_huang") == 12
    with pytest.raises(DataFormatError, match="Breaking, Popping"):
        finedance_genre_id("Salsa", source="x.json")
    with pytest.raises(DataFormatError):
        finedance_genre_id(3)  # type: ignore[arg-type]


def test_finedance_loads_representation(tmp_path):
    rng = np.random.default_rng(0)
    raw_train = _finedance_raw(rng, 90)
    _write_finedance(tmp_path, "001", raw_train, "Popping")
    _write_finedance(tmp_path, "063", _finedance_raw(rng, 40), "han tang")
    _write_finedance(tmp_path, "116", _finedance_raw(rng, 40), "Jazz")  # ignored file
    train = FineDanceDataset(tmp_path, "train")
    test = FineDanceDataset(tmp_path, "test")
    assert train.names == ("001",) and test.names == ("063",)
    assert "116" not in FineDanceDataset(tmp_path, "all").names
    assert len(train.missing) == 182
    seq = train[0]
    assert seq.name == "001" and seq.fps == 30 and seq.num_frames == 90
    assert seq.motion.shape == (90, 319) and seq.motion.dtype == np.float32
    assert np.array_equal(seq.motion[:, 4:7], raw_train[:, :3])
    assert np.array_equal(seq.motion[:, 7:], raw_train[:, 3:])  # 6D kept bit-exact
    assert set(np.unique(seq.motion[:, :4])) <= {0.0, 1.0}
    assert (seq.genre_id, seq.genre, seq.style1) == (1, "Popping", "Street")
    assert seq.music_path == tmp_path / "music_wav" / "001.wav"
    tseq = test["063"]
    assert (tseq.genre_id, tseq.genre) == (9, "HanTang") and tseq.motion.shape == (40, 319)
    assert [s.name for s in test] == ["063"]
    with pytest.raises(DataFormatError, match="missing"):
        FineDanceDataset(tmp_path, "train", strict=True)


def test_finedance_contacts_follow_fk(tmp_path):
    t = 30
    d6 = np.tile(axis_angle_to_rotation_6d(np.zeros((52, 3))).reshape(1, 312), (t, 1))
    trans = np.zeros((t, 3))
    trans[15:, 0] = 0.05 * np.arange(1, t - 14)  # stands, then glides at 1.5 m/s
    raw = np.concatenate([trans, d6], 1).astype(np.float32)
    _write_finedance(tmp_path, "002", raw, "Breaking")
    seq = FineDanceDataset(tmp_path, "train")["002"]
    assert seq.motion[:14, :4].all() and not seq.motion[14:, :4].any()
    assert np.allclose(rotation_6d_to_matrix(seq.motion[0, 7:13]), np.eye(3))


@pytest.mark.parametrize(
    "problem,match",
    [
        ("shape", r"\(T, 315\)"),
        ("nan", "NaN"),
        ("degenerate", "degenerate 6D"),
        ("no_label", "label file .*missing"),
        ("bad_genre", "unknown FineDance genre"),
        ("no_music", "music file"),
        ("bad_json", "not valid JSON"),
        ("no_style2", "style2"),
    ],
)
def test_finedance_errors_name_the_file(tmp_path, problem, match):
    rng = np.random.default_rng(1)
    raw = _finedance_raw(rng, 20)
    style2: str | None = "Urban"
    if problem == "shape":
        raw = raw[:, :300]
    elif problem == "nan":
        raw[5, 40] = np.nan
    elif problem == "degenerate":
        raw[3, 3 + 6 * 7 : 3 + 6 * 8] = 0.0
    elif problem == "no_label":
        style2 = None
    elif problem == "bad_genre":
        style2 = "Tango"
    _write_finedance(tmp_path, "005", raw, style2, music=problem != "no_music")
    label = tmp_path / "label_json" / "005.json"
    if problem == "bad_json":
        label.write_text("{oops")
    elif problem == "no_style2":
        label.write_text(json.dumps({"style1": "Folk"}))
    ds = FineDanceDataset(tmp_path, "train")
    with pytest.raises(DataFormatError, match=match) as info:
        ds.load("005")
    assert "005" in str(info.value)


def test_finedance_without_music_and_bad_root(tmp_path):
    rng = np.random.default_rng(2)
    _write_finedance(tmp_path, "007", _finedance_raw(rng, 10), "Kun", music=False)
    seq = FineDanceDataset(tmp_path, "train", require_music=False)[0]
    assert seq.music_path is None and seq.genre == "Kun"
    with pytest.raises(DataFormatError, match="motion"):
        FineDanceDataset(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="no FineDance test files"):
        FineDanceDataset(tmp_path, "test")


# ---------------------------------------------------------------------------------------- AIST++
def _aist_data(rng: np.random.Generator, n: int, scaling: float = 93.0) -> dict:
    return {
        "smpl_poses": rng.normal(scale=0.3, size=(n, 72)),
        "smpl_trans": np.cumsum(rng.normal(scale=1.0, size=(n, 3)), axis=0) + np.array([0, 90, 0]),
        "smpl_scaling": np.array([scaling]),
        "smpl_loss": np.float64(1.5),
    }


def _write_pkl(path: Path, data: dict, protocol: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)


def test_aistpp_names_and_tempo():
    info = parse_sequence_name("gBR_sBM_cAll_d04_mBR0_ch01")
    assert (info.genre_code, info.genre_id, info.genre) == ("gBR", 0, "Break")
    assert (info.music_id, info.tempo_bpm, info.dancer, info.situation) == ("mBR0", 80.0, "d04",
                                                                          "sBM")
    house = parse_sequence_name("gHO_sFM_c05_d16_mHO3_ch05.pkl")
    assert (house.genre_id, house.genre, house.tempo_bpm) == (5, "House", 125.0)
    assert house.motion_name == "gHO_sFM_cAll_d16_mHO3_ch05" and house.camera == "c05"
    assert aistpp_music_tempo("mJB5") == 130.0 and aistpp_music_tempo("mHO0") == 110.0
    assert [parse_sequence_name(f"{c}_sBM_cAll_d01_m{c[1:]}1_ch01").genre_id
            for c, _ in AISTPP_GENRES] == list(range(10))
    with pytest.raises(DataFormatError, match="gGG_sSS"):
        parse_sequence_name("gBR_sBM_d04_mBR0_ch01")
    with pytest.raises(DataFormatError, match="gXX"):
        parse_sequence_name("gXX_sBM_cAll_d04_mBR0_ch01")
    with pytest.raises(InputError, match="music id"):
        aistpp_music_tempo("mZZ1")


def test_aistpp_loads_representation(tmp_path):
    rng = np.random.default_rng(3)
    a, b = "gBR_sBM_cAll_d04_mBR0_ch01", "gHO_sFM_cAll_d16_mHO3_ch05"
    da, db = _aist_data(rng, 61), _aist_data(rng, 40, scaling=1.0)
    _write_pkl(tmp_path / "motions" / f"{a}.pkl", da, protocol=2)
    _write_pkl(tmp_path / "motions" / f"{b}.pkl", db, protocol=5)
    _write_wav(tmp_path / "wavs" / "mBR0.wav")
    _write_wav(tmp_path / "wavs" / "mHO3.wav")
    (tmp_path / "train.txt").write_text(f"{a}\n\n# comment\n")
    (tmp_path / "test.txt").write_text(f"{b}\n")
    (tmp_path / "ignore.txt").write_text(f"{b}\n")
    assert read_split_file(tmp_path / "train.txt") == (a,)

    train = AISTPPDataset(tmp_path, tmp_path / "train.txt", music_dir=tmp_path / "wavs")
    assert train.names == (a,)
    seq = train[0]
    assert seq.fps == 30 and seq.motion.shape == (31, 151) and seq.motion.dtype == np.float32
    assert (seq.genre_id, seq.genre, seq.info.tempo_bpm) == (0, "Break", 80.0)
    expected_trans = da["smpl_trans"][::2] / 93.0
    assert np.allclose(seq.motion[:, 4:7], expected_trans, atol=1e-5)
    rot = rotation_6d_to_matrix(seq.motion[:, 7:].reshape(31, 24, 6).astype(np.float64))
    assert np.abs(rot - axis_angle_to_matrix(da["smpl_poses"][::2].reshape(31, 24, 3))).max() < 1e-5
    assert seq.music_path == tmp_path / "wavs" / "mBR0.wav"

    test = AISTPPDataset(tmp_path, tmp_path / "test.txt")
    hseq = test[b]
    assert (hseq.genre, hseq.info.tempo_bpm, hseq.motion.shape) == ("House", 125.0, (20, 151))
    assert hseq.music_path is None
    everything = AISTPPDataset(tmp_path)
    assert everything.names == (a, b)
    assert AISTPPDataset(tmp_path, ignore=tmp_path / "ignore.txt").names == (a,)
    # A per-camera name resolves to the cAll motion file.
    cam = AISTPPDataset(tmp_path, ["gBR_sBM_c01_d04_mBR0_ch01"])
    assert np.array_equal(cam[0].motion, seq.motion)
    with pytest.raises(DataFormatError, match="no AIST"):
        AISTPPDataset(tmp_path, tmp_path / "test.txt", ignore=[b])
    with pytest.raises(DataFormatError, match="1 AIST"):
        AISTPPDataset(tmp_path, [a, "gPO_sBM_cAll_d10_mPO1_ch02"], strict=True)


def test_aistpp_60_to_30_fps_and_scaling(tmp_path):
    rng = np.random.default_rng(4)
    data = _aist_data(rng, 8, scaling=50.0)
    _write_pkl(tmp_path / "motions" / "gKR_sBM_cAll_d28_mKR2_ch01.pkl", data)
    ds = AISTPPDataset(tmp_path)
    m = ds[0].motion
    assert m.shape[0] == 4
    assert np.allclose(m[:, 4:7], data["smpl_trans"][[0, 2, 4, 6]] / 50.0, atol=1e-5)
    full = AISTPPDataset(tmp_path, fps=60)[0].motion
    assert full.shape[0] == 8 and np.array_equal(full[::2, 4:], m[:, 4:])


def test_aistpp_rejects_code_in_pickles(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "motions" / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    _write_pkl(path, {"smpl_poses": Evil()})
    with pytest.raises(DataFormatError, match="only numpy arrays"):
        load_aistpp_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "change,match",
    [
        ({"smpl_poses": np.zeros((10, 69))}, r"\(N, 72\)"),
        ({"smpl_trans": np.zeros((9, 3))}, r"\(10, 3\)"),
        ({"smpl_scaling": np.array([0.0])}, "positive"),
        ({"smpl_poses": np.full((10, 72), np.nan)}, "NaN"),
        ({"smpl_trans": None}, "lacks"),
    ],
)
def test_aistpp_bad_pickles(tmp_path, change, match):
    data = _aist_data(np.random.default_rng(5), 10)
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "motions" / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    _write_pkl(path, data)
    with pytest.raises(DataFormatError, match=match) as info:
        load_aistpp_pickle(path)
    assert "gBR_sBM_cAll_d04_mBR0_ch01.pkl" in str(info.value)
