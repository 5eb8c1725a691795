"""The evaluation entry on tiny synthetic folders: JSON + Markdown, mean/std over rounds, cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.evaluation import evaluate as ev


def _dance(rng: np.random.Generator, frames: int, joints: int, step: float) -> np.ndarray:
    rest = np.zeros((joints, 3))
    rest[:, 1] = np.linspace(-1.0, 0.6, joints)
    rest[:, 0] = rng.normal(0, 0.2, joints)
    walk = np.cumsum(rng.normal(0, step, (frames, joints, 3)), axis=0)
    return rest + walk


@pytest.fixture()
def folders(tmp_path):
    rng = np.random.default_rng(0)
    real = tmp_path / "real"
    real.mkdir()
    for i in range(4):  # 4 sequences of 250 frames -> 8 clips of 120 frames (stride 120)
        beats = np.arange(5, 250, 15)
        np.savez(real / f"seq{i}.npz", joints=_dance(rng, 250, 24, 0.01), music_beats=beats)
    gen = tmp_path / "gen"
    for r in range(3):
        d = gen / f"round_{r}"
        d.mkdir(parents=True)
        for i in range(5):
            np.savez(
                d / f"d{i}.npz",
                joints=_dance(rng, 120, 24, 0.012 + 0.004 * r),
                music_beats=np.arange(3, 120, 15),
            )
    return real, gen, tmp_path


def test_cli_writes_json_and_markdown_with_mean_std_over_rounds(folders, capsys):
    real, gen, tmp = folders
    out = tmp / "out" / "table"
    cache = tmp / "cache"
    argv = [str(gen), "--real", str(real), "-o", str(out), "--cache-dir", str(cache), "--quiet"]
    assert ev.main(argv) == 0
    result = json.loads((tmp / "out" / "table.json").read_text())
    gen_res = result["generated"]
    assert gen_res["n_rounds"] == 3 and len(gen_res["rounds"]) == 3
    assert result["ground_truth"]["n_clips"] == 8
    for key in ("FID_k", "FID_g", "Div_k", "Div_g", "PFC", "PBC", "BAS"):
        values = [r[key] for r in gen_res["rounds"]]
        assert gen_res["mean"][key] == pytest.approx(np.mean(values))
        assert gen_res["std"][key] == pytest.approx(np.std(values))
    assert gen_res["std"]["FID_k"] > 0  # rounds differ
    # Rounds with faster random walks drift further from the real distribution.
    fid_k = [r["FID_k"] for r in gen_res["rounds"]]
    assert fid_k[0] < fid_k[2]
    # 24 joints: no hand/body split into fingers, so no FID_hand.
    assert "FID_hand" not in gen_res["mean"]
    table = (tmp / "out" / "table.md").read_text()
    lines = table.splitlines()
    assert lines[0].startswith("| Method | FID_body↓ | FID_k↓ | FID_g↓ |")
    assert "PFC↓ | PBC→ | PBC_PopDG→ | BAS↑ |" in lines[0]
    assert lines[2].startswith("| GT | / | / | / |")
    assert lines[3].startswith("| GCDance | ")
    assert f"{gen_res['mean']['FID_k']:.2f} ± {gen_res['std']['FID_k']:.2f}" in lines[3]
    assert list(cache.glob("real_*.npz"))


def test_real_features_are_cached_by_content(folders, monkeypatch):
    real, gen, tmp = folders
    cache = tmp / "cache"
    calls = []
    original = ev.compute_clip_set

    def counting(clips, *args, **kwargs):
        calls.append(len(clips))
        return original(clips, *args, **kwargs)

    monkeypatch.setattr(ev, "compute_clip_set", counting)
    first = ev.evaluate(gen, real=real, cache_dir=cache)
    assert calls == [8, 15]  # real clips once, then the 15 generated dances (all rounds)
    second = ev.evaluate(gen, real=real, cache_dir=cache)
    assert calls == [8, 15, 15]  # real set served from the cache
    assert second["real"]["cache_hit"] and not first["real"]["cache_hit"]
    assert second["generated"]["mean"] == first["generated"]["mean"]
    # Changing a real file's content changes the key.
    data = dict(np.load(real / "seq0.npz"))
    data["joints"] = data["joints"] + 0.01 * np.sin(np.arange(250))[:, None, None]
    np.savez(real / "seq0.npz", **data)
    third = ev.evaluate(gen, real=real, cache_dir=cache)
    assert calls[-2:] == [8, 15] and not third["real"]["cache_hit"]


def test_flat_folder_with_random_rounds_and_motion_files(tmp_path):
    from gcdance.motion.layout import AISTPP

    rng = np.random.default_rng(1)
    real = tmp_path / "real"
    gen = tmp_path / "gen"
    real.mkdir()
    gen.mkdir()
    for i in range(6):
        np.save(real / f"r{i}.npy", _dance(rng, 120, 24, 0.01))
    for i in range(8):
        motion = np.zeros((60, AISTPP.dim))
        motion[:, 4:7] = np.cumsum(rng.normal(0, 0.01, (60, 3)), axis=0)
        rot6 = np.tile([1.0, 0, 0, 0, 1.0, 0], 24) + rng.normal(0, 0.05, (60, 144))
        motion[:, 7:] = rot6
        np.savez(gen / f"g{i}.npz", motion=motion)
    result = ev.evaluate(gen, real=real, rounds=4, round_size=5, seed=3, cache_dir=None)
    assert result["generated"]["n_rounds"] == 4
    assert all(r["n_dances"] == 5 for r in result["generated"]["rounds"])
    assert "BAS" not in result["generated"]["mean"]  # no beats given
    assert "BAS: no music beats" in ev.markdown_table(result)


def test_errors_are_clear(folders, tmp_path):
    real, gen, _ = folders
    with pytest.raises(InputError):
        ev.evaluate(gen, real=real, finedance=real)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"no \.npz/\.npy"):
        ev.evaluate(empty, real=real)
    other = tmp_path / "other"
    other.mkdir()
    np.savez(other / "x.npz", joints=np.zeros((120, 52, 3)))
    np.savez(other / "y.npz", joints=np.ones((120, 52, 3)))
    with pytest.raises(InputError, match="joints"):
        ev.evaluate(other, real=real)
    assert ev.main([str(empty), "--real", str(real), "--no-cache", "--quiet"]) == 2


def _finedance_root(root, names, frames, rng):
    (root / "motion").mkdir(parents=True)
    (root / "label_json").mkdir()
    identity6d = np.tile([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 52)
    for name in names:
        raw = np.zeros((frames, 315), dtype=np.float32)
        raw[:, :3] = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0) + np.array([0.0, 0.9, 0.0])
        raw[:, 3:] = identity6d + rng.normal(0, 0.05, (frames, 312))
        np.save(root / "motion" / f"{name}.npy", raw)
        label = {"style1": "Street", "style2": "Popping"}
        (root / "label_json" / f"{name}.json").write_text(json.dumps(label))


def test_finedance_real_set_with_music(tmp_path):
    sf = pytest.importorskip("soundfile")
    pytest.importorskip("librosa")
    rng = np.random.default_rng(4)
    root = tmp_path / "finedance"
    _finedance_root(root, ["012", "036"], 250, rng)  # both in the test split
    (root / "music_wav").mkdir()
    sr = 22050
    y = np.zeros(int(sr * 250 / 30), dtype=np.float32)
    for start in np.arange(0, len(y) / sr, 0.5):  # 120 bpm clicks
        i = int(start * sr)
        y[i : i + 300] += np.hanning(300)[: len(y) - i].astype(np.float32)
    sf.write(root / "music_wav" / "012.wav", y, sr)
    gen = tmp_path / "gen"
    gen.mkdir()
    for i in range(4):
        np.savez(gen / f"g{i}.npz", joints=_dance(rng, 120, 52, 0.01), fps=30)
    result = ev.evaluate(gen, finedance=root, split="test", cache_dir=tmp_path / "cache")
    assert result["ground_truth"]["n_clips"] == 4  # 2 files x 2 clips of 120 frames
    assert result["config"]["split"] == "test"
    for key in ("FID_hand", "FID_body", "Div_hand", "Div_body", "PBC"):
        assert key in result["generated"]["mean"]
    # GT BAS comes from the beat-tracked music of 012 (036 has no music: left out of BAS).
    assert 0.0 < result["ground_truth"]["mean"]["BAS"] <= 1.0
    table = ev.markdown_table(result)
    assert table.splitlines()[0].startswith("| Method | FID_hand↓ | FID_body↓ | FID_k↓ | FID_g↓ |")
