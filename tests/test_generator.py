"""gcdance.Generator end to end on a random tiny bundle: audio + prompt -> Dance, edit, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")

import gcdance
from gcdance import masks
from gcdance.motion.layout import FINEDANCE

SR = 22050


def clicks(seconds: float, bpm: float = 120.0, sr: int = SR) -> tuple[np.ndarray, int]:
    """A click track with a bass note: music with an unambiguous beat."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * 110 * t)
    for beat in np.arange(0, seconds, 60.0 / bpm):
        i = int(beat * sr)
        y[i : i + 400] += np.hanning(800)[400:] * np.sin(2 * np.pi * 2000 * t[: 400])
    return y.astype(np.float32), sr


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.bundle import random_bundle

    return random_bundle(tmp_path_factory.mktemp("bundle") / "tiny", "tiny", seed=0)


@pytest.fixture(scope="module")
def generator(bundle: Path) -> gcdance.Generator:
    return gcdance.Generator(bundle, provider="cpu", threads=1)


def test_generate_gives_a_dance(generator: gcdance.Generator) -> None:
    dance = generator.generate(clicks(5.0), "Jazz", seed=1, steps=8)
    assert dance.motion.shape == (150, FINEDANCE.dim)
    assert np.isfinite(dance.motion).all()
    assert dance.genre == "Jazz" and dance.genre_probs["Jazz"] == 1.0
    assert dance.fps == 30
    assert dance.joints().shape == (150, 52, 3)
    again = generator.generate(clicks(5.0), "Jazz", seed=1, steps=8)
    np.testing.assert_array_equal(dance.motion, again.motion)
    other = generator.generate(clicks(5.0), "Jazz", seed=2, steps=8, guidance=1.5)
    assert not np.allclose(dance.motion, other.motion)
    # The settings used are recorded: the bundle's defaults when not given.
    sampling = generator.bundle.sampling
    assert dance.settings["guidance"] == sampling.guidance and dance.settings["steps"] == 8
    assert dance.settings["eta"] == sampling.eta
    assert other.settings["guidance"] == 1.5


def test_foot_lock_is_on_by_default_and_can_be_turned_off(generator: gcdance.Generator) -> None:
    from gcdance.motion.foot_lock import lock_feet

    locked = generator.generate(clicks(5.0), "Jazz", seed=1, steps=8)
    raw = generator.generate(clicks(5.0), "Jazz", seed=1, steps=8, foot_lock=False)
    assert locked.settings["foot_lock"] is True and raw.settings["foot_lock"] is False
    # the default is the raw dance put through the lock: nothing else differs
    np.testing.assert_array_equal(locked.motion, lock_feet(raw.motion, FINEDANCE))
    ref = generator.generate(clicks(5.0), "Hiphop", seed=3, steps=8)
    keep = masks.frames(0, 60)
    edited = generator.edit(clicks(5.0), "Jazz", ref, keep, seed=1, steps=8)
    kept = keep.resolve(FINEDANCE, 150)
    np.testing.assert_array_equal(edited.motion[kept], ref.motion[kept])
    assert edited.settings["foot_lock"] is True
    numpy_flag = generator.generate(clicks(2.0), "Jazz", steps=1, foot_lock=np.True_)
    assert numpy_flag.settings["foot_lock"] is True  # stored as a plain bool (JSON metadata)
    for bad in ("yes", 1, None):
        with pytest.raises(gcdance.GCDanceError, match="foot_lock must be True or False"):
            generator.generate(clicks(5.0), "Jazz", steps=2, foot_lock=bad)  # type: ignore[arg-type]
        with pytest.raises(gcdance.GCDanceError, match="foot_lock"):
            generator.edit(clicks(5.0), "Jazz", ref, keep, steps=2,
                           foot_lock=bad)  # type: ignore[arg-type]


def test_beat_sync_is_on_by_default_and_can_be_turned_off(
        generator: gcdance.Generator) -> None:
    """The default dance is the model's retimed to the music's beats (then foot-locked); the
    beats are the beat tracker's on the bundle's features; an edit's kept frames stay as they
    were."""
    from gcdance.metrics import beat_align_score
    from gcdance.motion.beat_sync import beat_sync

    audio = clicks(8.0)
    synced = generator.generate(audio, "Jazz", seed=1, steps=8, foot_lock=False)
    raw = generator.generate(audio, "Jazz", seed=1, steps=8, beat_sync=False, foot_lock=False)
    assert synced.settings["beat_sync"] is True and raw.settings["beat_sync"] is False
    beats = generator.music_beats(audio)
    # 120 bpm clicks: a beat every 15 frames (the tracker's, on the onset column; whole frames)
    assert np.allclose(np.diff(beats), 15, atol=1)
    np.testing.assert_array_equal(synced.motion, beat_sync(raw.motion, FINEDANCE, beats))
    assert not np.array_equal(synced.motion, raw.motion)
    half = beats + 7.5
    gap = [beat_align_score(d.joints(), beats) - beat_align_score(d.joints(), half)
           for d in (raw, synced)]
    assert gap[1] > gap[0] + 0.1  # even a random model's dance now stops on the beats
    ref = generator.generate(audio, "Hiphop", seed=3, steps=8)
    keep = masks.frames(90, 150)
    kept = keep.resolve(FINEDANCE, 240)
    edited = generator.edit(audio, "Jazz", ref, keep, seed=1, steps=8, foot_lock=False)
    edited_raw = generator.edit(audio, "Jazz", ref, keep, seed=1, steps=8, beat_sync=False,
                                foot_lock=False)
    np.testing.assert_array_equal(edited.motion[kept], ref.motion[kept])
    # the regenerated frames are synced (fading out before the kept ones), the kept left alone
    np.testing.assert_array_equal(edited.motion,
                                  beat_sync(edited_raw.motion, FINEDANCE, beats, keep=kept))
    assert not np.array_equal(edited.motion[:60], edited_raw.motion[:60])
    assert edited.settings["beat_sync"] is True
    # a joint-wise edit keeps something on every frame: the reference's timing stays
    hands = generator.edit(audio, "Jazz", ref, masks.joints("hands"), seed=1, steps=8,
                           foot_lock=False)
    hands_raw = generator.edit(audio, "Jazz", ref, masks.joints("hands"), seed=1, steps=8,
                               beat_sync=False, foot_lock=False)
    np.testing.assert_array_equal(hands.motion, hands_raw.motion)
    for bad in ("yes", 1, None):
        with pytest.raises(gcdance.GCDanceError, match="beat_sync must be True or False"):
            generator.generate(audio, "Jazz", steps=2, beat_sync=bad)  # type: ignore[arg-type]
        with pytest.raises(gcdance.GCDanceError, match="beat_sync"):
            generator.edit(audio, "Jazz", ref, keep, steps=2,
                           beat_sync=bad)  # type: ignore[arg-type]


def test_samplers(generator: gcdance.Generator) -> None:
    """sampler=None is the bundle's (DDIM here); "dpmpp" (DPM-Solver++ 2M) gives another dance
    of the same music and prompt, recorded in the settings; eta > 0 is DDIM's only."""
    audio = clicks(5.0)
    base = generator.generate(audio, "Jazz", seed=1, steps=6)
    ddim = generator.generate(audio, "Jazz", seed=1, steps=6, sampler="ddim")
    dpmpp = generator.generate(audio, "Jazz", seed=1, steps=6, sampler="dpmpp")
    assert base.settings["sampler"] == "ddim" == generator.bundle.sampling.sampler
    np.testing.assert_array_equal(base.motion, ddim.motion)
    assert dpmpp.settings["sampler"] == "dpmpp" and dpmpp.settings["eta"] == 0.0
    assert np.isfinite(dpmpp.motion).all() and not np.allclose(dpmpp.motion, ddim.motion)
    again = generator.generate(audio, "Jazz", seed=1, steps=6, sampler="dpmpp")
    np.testing.assert_array_equal(again.motion, dpmpp.motion)
    ref = generator.generate(audio, "Hiphop", seed=3, steps=4)
    edited = generator.edit(audio, "Jazz", ref, masks.frames(0, 30), seed=1, steps=4,
                            sampler="dpmpp")
    assert edited.settings["sampler"] == "dpmpp"
    with pytest.raises(gcdance.InputError, match="unknown sampler 'euler'"):
        generator.generate(audio, "Jazz", steps=2, sampler="euler")
    with pytest.raises(gcdance.InputError, match="eta must be 0"):
        generator.generate(audio, "Jazz", steps=2, sampler="dpmpp", eta=0.5)


def test_arguments_are_checked_before_any_work(tmp_path: Path) -> None:
    """Every Generator argument is checked at the Python boundary, before the bundle loads or
    the engine starts (a missing bundle would be the error otherwise)."""
    missing = tmp_path / "no-bundle"
    cases = [({"threads": 0}, "threads must be a positive integer"),
             ({"threads": 1.5}, "threads must be a positive integer"),
             ({"threads": True}, "threads must be a positive integer"),
             ({"precision": "int4"}, "unknown precision"),
             ({"device_id": -1}, "device_id must be a GPU ordinal"),
             ({"device_id": 1.0}, "device_id must be a GPU ordinal"),
             ({"provider_options": ["use_tf32"]}, "provider_options must be a dict"),
             ({"provider_options": {"device_id": "1"}}, r"Generator\(device_id=N\)")]
    for kwargs, message in cases:
        with pytest.raises(gcdance.InputError, match=message):
            gcdance.Generator(missing, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(gcdance.BundleError):
        gcdance.Generator(missing, threads=None)
    for provider in ("metal", None, 1):
        with pytest.raises(gcdance.InputError, match="unknown provider"):
            gcdance.Generator(missing, provider=provider)  # type: ignore[arg-type]


def test_wav2clip_features_without_their_graph_are_refused_up_front(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from export.bundle import random_bundle

    monkeypatch.setenv("GCDANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GCDANCE_WAV2CLIP_ONNX", raising=False)
    out = random_bundle(tmp_path / "w2c", "tiny", features="full", check_shapes=((2, 8),))
    with pytest.raises(gcdance.WeightsError, match=r"no wav2clip.onnx.*export.wav2clip_onnx"):
        gcdance.Generator(out, provider="cpu")


def test_one_gpu_per_model(bundle: Path) -> None:
    """The GPU is Generator(device_id=): one source for every session, buffer and provider."""
    with pytest.raises(gcdance.InputError, match="device_id must be a GPU ordinal"):
        gcdance.Generator(bundle, provider="cpu", device_id=-1)
    with pytest.raises(gcdance.InputError, match=r"provider_options has device_id='1'.*"
                                                 r"Generator\(device_id=N\)"):
        gcdance.Generator(bundle, provider="cpu", provider_options={"device_id": "1"})
    assert gcdance.Generator(bundle, provider="cpu", device_id=0).device_id == 0


def test_songs_outside_the_tensorrt_profile_are_refused(generator: gcdance.Generator) -> None:
    """A TensorRT engine covers a range of window counts; a song outside it is refused before
    sampling with what to do (checked here on the CPU generator with TensorRT's range set)."""
    generator._windows = (1, 1)
    try:
        with pytest.raises(gcdance.InputError, match=r"needs 2 windows but the TensorRT "
                                                     r"engine's profile covers 1 to 1 \(4 s"):
            generator.generate(clicks(5.0), "Jazz", steps=2)
        assert generator.generate(clicks(4.0), "Jazz", steps=2).motion.shape[0] == 120
        generator._windows = (2, 4)
        with pytest.raises(gcdance.InputError, match=r"needs 1 windows .* covers 2 to 4"):
            generator.generate(clicks(4.0), "Jazz", steps=2)
    finally:
        generator._windows = None


def test_tensorrt_options_are_checked_before_any_work(bundle: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from gcdance.engine import generator as generator_mod

    monkeypatch.setenv("GCDANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(generator_mod, "available_providers", lambda: ["cpu", "cuda", "tensorrt"])
    with pytest.raises(gcdance.InputError, match="malformed TensorRT profile shapes"):
        gcdance.Generator(bundle, provider="tensorrt",
                          provider_options={"trt_profile_max_shapes": "x_t:2x"})
    with pytest.raises(gcdance.InputError, match=r"Generator\(device_id=N\)"):
        gcdance.Generator(bundle, provider="tensorrt", provider_options={"device_id": "1"})
    assert not (tmp_path / "cache").exists()  # no engine folder made for a refused generator


def test_given_tensorrt_profiles_find_their_cache(bundle: Path) -> None:
    """Given profile or precision options go where export.tensorrt builds that engine, or, for
    a profile no EngineProfile gives, to a folder of their own; bad ones fail before work."""
    from gcdance.engine import tensorrt
    from gcdance.engine.bundle import load_bundle

    b = load_bundle(bundle)
    keys = ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")
    default = tensorrt.generator_options(b, {})
    assert default == tensorrt.provider_options(b)
    wide = tensorrt.EngineProfile(max_windows=40)
    given = {k: tensorrt.provider_options(b, "/x", wide)[k] for k in keys}
    opts = tensorrt.generator_options(b, given)
    assert opts["trt_engine_cache_path"] == str(tensorrt.default_engine_dir(b, profile=wide))
    assert opts["trt_timing_cache_path"] == opts["trt_engine_cache_path"]
    assert tensorrt.profile_range(opts) == (1, 40)
    fp32 = tensorrt.generator_options(b, {"trt_fp16_enable": "0"})
    assert fp32["trt_engine_cache_path"] == str(tensorrt.default_engine_dir(b, fp16=False))
    same = tensorrt.generator_options(b, {"trt_fp16_enable": "1"})  # the default, spelled out
    assert same["trt_engine_cache_path"] == default["trt_engine_cache_path"]
    off = tensorrt.generator_options(b, {"trt_int8_enable": str(False)})  # "False" is off too
    assert off["trt_engine_cache_path"] == default["trt_engine_cache_path"]
    reordered = {k: ",".join(reversed(v.split(","))) for k, v in given.items()}
    assert (tensorrt.generator_options(b, reordered)["trt_engine_cache_path"]
            == opts["trt_engine_cache_path"])  # the same profile, inputs in another order
    odd = {k: tensorrt.shape_string({n: (31 if k.endswith("max_shapes") else shape[0],
                                         *shape[1:])
                                     for n, shape in tensorrt.parse_shapes(given[k]).items()})
           for k in keys}
    custom = tensorrt.generator_options(b, odd)
    assert Path(custom["trt_engine_cache_path"]).name.startswith("custom-")
    assert tensorrt.profile_range(custom) == (1, 15)
    mine = tensorrt.generator_options(b, {**given, "trt_engine_cache_path": "/mine"})
    assert mine["trt_engine_cache_path"] == "/mine"  # a given folder is kept
    wrong_frames = {k: v.replace("x120x", "x90x") for k, v in given.items()}
    with pytest.raises(gcdance.InputError, match=r"the engine feeds it \(batch, 120, 319\)"):
        tensorrt.generator_options(b, wrong_frames)
    wrong_names = {k: v.replace("x_t:", "x:") for k, v in given.items()}
    with pytest.raises(gcdance.InputError, match=r"names the inputs"):
        tensorrt.generator_options(b, wrong_names)


def test_start_and_duration_select_the_segment(generator: gcdance.Generator) -> None:
    dance = generator.generate(clicks(9.0), "Breaking", steps=4, start=2.0, duration=3.5)
    assert dance.motion.shape[0] == 105
    assert dance.audio.start == 2.0


def test_long_music_uses_windows(generator: gcdance.Generator) -> None:
    dance = generator.generate(clicks(13.3), "Popping", steps=4)
    assert dance.motion.shape == (399, FINEDANCE.dim)
    assert np.isfinite(dance.motion).all()


def test_edit_keeps_what_the_mask_keeps(generator: gcdance.Generator) -> None:
    audio = clicks(6.0)
    ref = generator.generate(audio, "Locking", seed=3, steps=6)
    keep = masks.joints("body") | masks.frames(0, 30)
    edited = generator.edit(audio, "Locking", reference=ref, keep=keep, seed=4, steps=6)
    mask = keep.resolve(FINEDANCE, ref.motion.shape[0])
    np.testing.assert_array_equal(edited.motion[mask], ref.motion[mask])
    assert not np.allclose(edited.motion[~mask], ref.motion[~mask])
    with pytest.raises(gcdance.InputError, match="reference has 90 frames"):
        generator.edit(audio, "Locking", reference=ref.motion[:90], keep=keep, steps=2)


def test_threads_share_one_generator(generator: gcdance.Generator, concurrently) -> None:
    audio = clicks(4.0)
    want = generator.generate(audio, "Urban", seed=5, steps=4).motion
    out = concurrently(lambda: generator.generate(audio, "Urban", seed=5, steps=4).motion, 3)
    assert len(out) == 3
    for motion in out:
        np.testing.assert_array_equal(motion, want)
    assert 1 <= len(generator._pool) <= 4  # engine state for at most the calls at once


def test_threads_one_after_another_reuse_the_engine_state(bundle: Path) -> None:
    """Short-lived threads borrow the same native generator (its buffers are reused instead of
    made anew per thread)."""
    import threading

    gen = gcdance.Generator(bundle, provider="cpu", threads=1)
    audio = clicks(4.0)
    for _ in range(3):
        t = threading.Thread(target=lambda: gen.generate(audio, "Urban", steps=2))
        t.start()
        t.join()
    assert len(gen._pool) == 1
    with pytest.raises(gcdance.EngineError, match="cancelled"):  # returned after a failure
        gen.generate(audio, "Urban", steps=2, progress=lambda i, n: False)
    assert len(gen._pool) == 1


def test_bad_input(generator: gcdance.Generator, tmp_path: Path) -> None:
    with pytest.raises(gcdance.AudioError):
        generator.generate(tmp_path / "missing.wav", "Jazz")
    with pytest.raises(gcdance.InputError, match="steps must be a positive integer"):
        generator.generate(clicks(2.0), "Jazz", steps=0)
    for seed in (-1, 2**70, 1.5):  # checked before the native call (no raw TypeError)
        with pytest.raises(gcdance.InputError, match="seed"):
            generator.generate(clicks(2.0), "Jazz", seed=seed, steps=2)  # type: ignore[arg-type]
    assert generator.generate(clicks(2.0), "Jazz", seed=2**64 - 1, steps=1).seed == 2**64 - 1
    with pytest.raises(gcdance.InputError, match="unknown provider"):
        gcdance.Generator(generator.bundle, provider="metal")


def test_missing_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(gcdance.BundleError):
        gcdance.Generator(tmp_path / "nothing-here")
