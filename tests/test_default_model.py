"""The default model that ships with the package: it loads from the installed package, is the
trained `small` model with its model card, and makes a dance of a real song end to end (what the
README's first command does)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gcdance
from gcdance.engine.bundle import DEFAULT_BUNDLE_DIR, load_bundle

pytestmark = pytest.mark.slow  # the default model / a trained pipeline

immich = pytest.importorskip("immich_memories_music")
TRACK = Path(immich.tracks_dir()) / "happy" / "happy_electronic_s411.opus"


def test_default_bundle_is_packaged_trained_and_documented() -> None:
    b = load_bundle(None)  # validated: every file present and matching its sha256
    assert b.path == DEFAULT_BUNDLE_DIR
    prov = b.provenance
    assert prov["untrained"] is False and prov["source"] == "checkpoint"
    assert prov["training"]["model"]["name"] == "small"
    assert b.dataset == "finedance" and len(b.genres) == 16
    assert b.features.sets == ("stft", "baseline")  # no external weights needed
    assert b.features.baseline_bounded  # so that it streams (music_diagnosis section 14)
    assert b.provenance["retuned"]["changed"]["baseline_bounded"] == [False, True]
    card = b.model_card
    assert card is not None
    text = card.read_text(encoding="utf-8")
    for section in ("## Training", "## Measured on held-out music", "## What it can do",
                    "## What it cannot do"):
        assert section in text, section
    # the card's numbers were measured at the bundle's sampling defaults (docs/sampling.md,
    # "The default model's sampler": 5 DPM-Solver++ steps on the logsnr grid, deterministic)
    s = b.sampling
    assert (s.sampler, s.steps, s.eta, s.timesteps) == ("dpmpp", 5, 0.0, "logsnr")
    assert f"| sampling | DPM-Solver++, {s.steps} steps on the {s.timesteps} timestep grid" in text
    assert f"256 dances, {s.steps} steps of DPM-Solver++ on the {s.timesteps} timestep grid" in text
    assert f"guidance {s.guidance}, eta {s.eta}" in text
    sizes = [p.stat().st_size for p in b.files.values()]
    assert max(sizes) < 50_000_000  # the repository's limit per file


def test_default_model_dances_to_a_real_song(tmp_path: Path) -> None:
    gen = gcdance.Generator(provider="cpu")
    dance = gen.generate(TRACK, "energetic K-pop with sharp arm hits", seed=0, start=8.0,
                         duration=6.0)
    assert dance.genre == "Korean"
    joints = dance.joints()
    assert joints.shape == (180, 52, 3) and np.isfinite(joints).all()
    # a trained model stands on the floor and moves
    feet = joints[:, [7, 8, 10, 11], 1]
    assert abs(float(np.percentile(feet.min(axis=1), 50))) < 0.15
    speed = np.linalg.norm(np.diff(joints[:, :22], axis=0), axis=-1).mean() * 30
    assert 0.05 < speed < 3.0
    # and the same seed gives the same dance
    again = gen.generate(TRACK, "energetic K-pop with sharp arm hits", seed=0, start=8.0,
                         duration=6.0)
    np.testing.assert_array_equal(again.motion, dance.motion)


def test_default_model_streams_what_it_generates() -> None:
    """The shipped model on a real song fed in 0.1 s blocks at 44.1 kHz: the pieces come while
    the audio arrives and, joined, are its generate() (beat sync and foot lock on)."""
    from gcdance.conditioning.audio import load_audio

    gen = gcdance.Generator(provider="cpu")
    y = load_audio(TRACK, sr=44100, start=20.0, duration=9.0)
    whole = gen.generate((y, 44100), "Jazz", seed=1)
    got, arrived, fed = [], [], 0

    def blocks():
        nonlocal fed
        for at in range(0, y.size, 4410):
            fed = at + 4410
            yield y[at : at + 4410]

    for start, piece in gen.stream(blocks(), "Jazz", sample_rate=44100, seed=1):
        assert start == sum(p.shape[0] for p in got)
        got.append(piece)
        arrived.append(min(fed, y.size) / 44100)
    np.testing.assert_allclose(np.concatenate(got), whole.motion, rtol=0, atol=1e-4)
    assert len(got) >= 3 and arrived[0] < 8.0  # the first piece before the song's end


def test_cli_default_model_writes_bvh_and_video(tmp_path: Path) -> None:
    from gcdance.cli import main

    bvh, mp4 = tmp_path / "dance.bvh", tmp_path / "dance.mp4"
    assert main(["generate", str(TRACK), "--prompt", "Popping", "--duration", "4",
                 "-o", str(bvh), "-o", str(mp4), "--quiet"]) == 0
    assert bvh.read_text().startswith("HIERARCHY")
    assert mp4.stat().st_size > 10_000 and mp4.read_bytes()[4:8] == b"ftyp"


def test_cli_writes_the_dance_the_api_makes(tmp_path: Path) -> None:
    """The CLI's options reach the Generator: the same dance as the Python API (same seed,
    sampler, steps, eta and threads), and a bad engine option fails before any file is
    written."""
    from gcdance.cli import main

    out = tmp_path / "jazz.npz"
    assert main(["generate", str(TRACK), "--prompt", "Jazz", "--duration", "3", "--sampler",
                 "ddim", "--steps", "6", "--eta", "0.5", "--seed", "3", "--threads", "1", "-o",
                 str(out), "--quiet"]) == 0
    api = gcdance.Generator(provider="cpu", threads=1).generate(
        TRACK, "Jazz", seed=3, sampler="ddim", steps=6, eta=0.5, duration=3.0)
    np.testing.assert_array_equal(np.load(out)["motion"], api.motion)
    assert main(["generate", str(TRACK), "--prompt", "Jazz", "--threads", "0", "--quiet",
                 "-o", str(tmp_path / "x.npz")]) == 2
    assert not (tmp_path / "x.npz").exists()


def test_info_names_the_default_model(capsys: pytest.CaptureFixture[str]) -> None:
    from gcdance.cli import main

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["bundle"]
    assert info["path"] == str(DEFAULT_BUNDLE_DIR) and info["trained"] is True
    assert info["model"] == "small" and info["model_card"].endswith("MODEL_CARD.md")
    assert info["stream_lookahead_s"] == 2.633  # the bounded baseline set: it streams
    assert main(["info"]) == 0
    assert "streams (Generator.stream): yes, features final 2.633 s" in capsys.readouterr().out
