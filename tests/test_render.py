"""Skeleton videos: frames look like a coloured skeleton, GIF and MP4 (with audio) files."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from gcdance.dance import AudioInfo, Dance
from gcdance.errors import AudioNotFoundError, GCDanceError, InputError
from gcdance.motion.layout import FINEDANCE
from gcdance.motion.representation import build_motion

PIL = pytest.importorskip("PIL", reason="Pillow (render dependency) is not installed")
from PIL import Image  # noqa: E402

from gcdance.io import render as render_mod  # noqa: E402

FRAMES = 20
SIZE = (160, 120)


def _dance(frames: int = FRAMES, **kw: object) -> Dance:
    rng = np.random.default_rng(0)
    t = np.arange(frames)[:, None, None] / 30.0
    aa = 0.6 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5, (52, 3)) * t + rng.uniform(0, 6, (52, 3)))
    trans = np.stack([0.5 * t[:, 0, 0], 0.95 + 0 * t[:, 0, 0], 0 * t[:, 0, 0]], -1)
    return Dance(build_motion(trans, aa, FINEDANCE), genre="Jazz", **kw)  # type: ignore[arg-type]


def _ffmpeg() -> str:
    try:
        return render_mod.find_ffmpeg()
    except GCDanceError as exc:
        pytest.skip(f"no ffmpeg binary (pip install imageio-ffmpeg): {exc}")


def _write_tone(path: Path, seconds: float, sr: int = 22050) -> None:
    t = np.arange(int(seconds * sr)) / sr
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sr)
        wf.writeframes(pcm.tobytes())


def _probe(exe: str, path: Path) -> tuple[list[str], int]:
    """Stream lines of ``ffmpeg -i`` and the number of video frames (packets, no decoding)."""
    info = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    streams = [ln.strip() for ln in info.stderr.splitlines() if re.search(r"Stream #\d+:\d+", ln)]
    count = subprocess.run(
        [exe, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
        capture_output=True, text=True,
    )
    frames = re.findall(r"frame=\s*(\d+)", count.stderr)
    assert frames, count.stderr
    return streams, int(frames[-1])


def test_frame_draws_a_coloured_skeleton(tmp_path: Path) -> None:
    d = _dance()
    skel = d.skeleton
    r = render_mod.SkeletonRenderer(d.joints(), skel.parents, skel.joint_names, size=(320, 240))
    im = r.frame(0, caption=None)
    assert im.size == (320, 240) and im.mode == "RGB"
    im.save(tmp_path / "frame.png")
    px = np.asarray(im).reshape(-1, 3).astype(int)

    def count(col: tuple[int, int, int]) -> int:
        return int((np.abs(px - col).sum(1) < 30).sum())

    # both sides and the centre line are drawn with a visible number of pixels
    assert count(render_mod._LEFT) > 150 and count(render_mod._RIGHT) > 150
    assert count(render_mod._CENTRE) > 150
    # the dancer is in the picture: the skeleton's pixels sit around the image centre
    mask = np.abs(np.asarray(im).astype(int) - render_mod._RIGHT).sum(-1) < 30
    ys, xs = np.nonzero(mask)
    assert 60 < xs.mean() < 260 and 30 < ys.mean() < 220
    # the floor reaches behind the camera: clipped at the near plane, it fills the bottom edge
    bottom = np.asarray(im)[-1].astype(int)
    assert (np.abs(bottom - render_mod._BACKGROUND).sum(-1) > 20).mean() > 0.9


@pytest.mark.parametrize("fps", [30.0, 24.0, 60.0])
def test_gif_delays_keep_the_frame_rate(fps: float) -> None:
    delays = render_mod._gif_delays(300, fps)
    assert all(d % 10 == 0 and d >= 10 for d in delays)
    assert abs(np.cumsum(delays)[-1] - 300 * 1000 / fps) <= 5
    assert np.abs(np.cumsum(delays) - np.arange(1, 301) * 1000 / fps).max() <= 5 + 1e-9


def test_gif_frame_count_and_timing(tmp_path: Path) -> None:
    d = _dance()
    out = d.render(tmp_path / "d.gif", size=SIZE)
    assert out.exists() and [p.name for p in tmp_path.iterdir()] == ["d.gif"]
    with Image.open(out) as im:
        assert im.n_frames == FRAMES
        delays = []
        for i in range(im.n_frames):
            im.seek(i)
            delays.append(im.info["duration"])
    assert set(delays) <= {30, 40}
    assert sum(delays) == pytest.approx(1000 * FRAMES / 30, abs=10)


def test_mp4_has_h264_video_with_the_right_frames_and_audio(tmp_path: Path) -> None:
    exe = _ffmpeg()
    song = tmp_path / "song.wav"
    _write_tone(song, 3.0)
    d = _dance(audio=AudioInfo(path=str(song), start=1.0, sample_rate=22050))
    out = d.render(tmp_path / "d.mp4", size=SIZE)  # audio from dance.audio
    streams, frames = _probe(exe, out)
    assert frames == FRAMES
    assert any("Video: h264" in s for s in streams), streams
    assert any("Audio: aac" in s for s in streams), streams
    # explicit (array, sr) audio, and silence
    samples = np.zeros(44100, np.float32)
    with pytest.raises(InputError, match="past the end"):  # default start: dance.audio.start
        d.render(tmp_path / "a.mp4", size=SIZE, audio=(samples, 44100))
    out = d.render(tmp_path / "a.mp4", size=SIZE, audio=(samples, 44100), audio_start=0.0)
    streams, frames = _probe(exe, out)
    assert frames == FRAMES and any("Audio:" in s for s in streams)
    streams, frames = _probe(exe, d.save(tmp_path / "s.mp4", size=SIZE, audio=False))
    assert frames == FRAMES and not any("Audio:" in s for s in streams)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "d.mp4", "s.mp4", "song.wav"]


def test_render_input_errors(tmp_path: Path) -> None:
    d = _dance(frames=3, audio=AudioInfo(path=str(tmp_path / "gone.wav")))
    with pytest.raises(InputError, match=r"supported: \.mp4, \.gif"):
        render_mod.render(d, tmp_path / "d.avi")
    with pytest.raises(InputError, match="even"):
        d.render(tmp_path / "d.mp4", size=(161, 120))
    _ffmpeg()
    with pytest.raises(AudioNotFoundError, match="audio=False"):
        d.render(tmp_path / "d.mp4", size=SIZE)
    assert not list(tmp_path.iterdir())


def test_missing_optional_dependencies_name_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in ("PIL", "imageio_ffmpeg"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)
    for mod in [m for m in sys.modules if m.split(".")[0] in ("PIL", "imageio_ffmpeg")]:
        monkeypatch.delitem(sys.modules, mod)
    with pytest.raises(GCDanceError, match="pip install Pillow"):
        render_mod._require_pillow()
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GCDanceError, match="pip install imageio-ffmpeg"):
        render_mod.find_ffmpeg()
