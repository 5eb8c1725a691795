"""The web front end's assets and the self-contained ``.html`` dance player (``gcdance.io.html``).

Fast tests check the built assets and the file's contents (self-contained, escaped, the music
cut and encoded, the fallbacks and errors). The browser tests (slow) open the saved file of a
real generated dance with real music from ``file://`` in headless Chromium (Debian's
``chromium``, driven by Playwright) with every network request blocked, and check that it plays:
the canvas changes while playing, the audio element advances, seeking the timeline moves the
pose and the music to the same time, pause stops both, and nothing is logged as an error.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from gcdance import web
from gcdance.dance import AudioInfo, Dance
from gcdance.errors import (
    AudioNotFoundError,
    EmptyAudioError,
    GCDanceError,
    InputError,
)
from gcdance.motion.layout import FINEDANCE
from gcdance.motion.representation import build_motion

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

needs_assets = pytest.mark.skipif(
    not web.assets_built(),
    reason="the web assets are not built: python tools/build_web.py (or pip install .)",
)


# ------------------------------------------------------------------------------------ helpers
def synthetic_dance(seconds: float = 3.0, audio: AudioInfo | None = None, **kw: Any) -> Dance:
    """A smoothly moving figure (no model needed)."""
    frames = round(30 * seconds)
    rng = np.random.default_rng(1)
    t = np.arange(frames)[:, None, None] / 30.0
    j = FINEDANCE.num_joints
    aa = 0.5 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5, (j, 3)) * t + rng.uniform(0, 6, (j, 3)))
    trans = np.stack([0.3 * t[:, 0, 0], 0.92 + 0.0 * t[:, 0, 0], 0.1 * t[:, 0, 0]], -1)
    motion = build_motion(trans, aa, FINEDANCE)
    args: dict[str, Any] = dict(genre="Popping", genre_probs={"Popping": 0.7, "Locking": 0.3},
                                prompt="robotic hits", seed=3, audio=audio)
    args.update(kw)
    return Dance(motion, **args)


def write_song(path: Path, seconds: float = 8.0, sr: int = 44100, channels: int = 2) -> Path:
    """A 120 bpm click track over a chord: something a person would recognise as music."""
    t = np.arange(round(seconds * sr)) / sr
    tone = 0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277.2 * t))
    clicks = np.exp(-40 * (t % 0.5)) * np.sin(2 * np.pi * 1000 * t) * 0.5
    mono = (tone + clicks).astype(np.float32)
    sf.write(path, np.repeat(mono[:, None], channels, axis=1), sr)
    return path


def blocks(page: str) -> dict[str, str]:
    """The data blocks of a saved page: id -> text."""
    found = dict(re.findall(r'<script type="application/[\w-]+" id="gcdance-(\w+)"[^>]*>([^<]*)'
                            r"</script>", page))
    assert set(found) == {"meta", "glb", "audio"}, found.keys()
    return found


def audio_block(page: str) -> tuple[str, bytes]:
    m = re.search(r'id="gcdance-audio" data-mime="([^"]*)">([^<]*)</script>', page)
    assert m is not None
    return m.group(1), base64.b64decode(m.group(2))


# ---------------------------------------------------------------------------- assets (fast)
def test_asset_names_cannot_leave_the_asset_folder() -> None:
    for bad in ("../pyproject.toml", "/etc/passwd", "assets/../../x", "a\\b", "", "assets//x"):
        with pytest.raises(InputError, match="asset name"):
            web.asset_path(bad)


def test_missing_assets_name_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(web, "DIST", tmp_path / "dist")
    assert not web.assets_built()
    with pytest.raises(web.WebAssetsMissingError, match=r"tools/build_web\.py") as err:
        web.asset_text("index.html")
    assert "pip install ." in str(err.value)
    assert isinstance(err.value, GCDanceError)
    with pytest.raises(web.WebAssetsMissingError, match="not built"):
        synthetic_dance(1.0).save(tmp_path / "d.html")
    assert not (tmp_path / "d.html").exists()


def test_lockfile_pins_what_package_json_asks_for() -> None:
    pkg = json.loads((REPO / "web" / "package.json").read_text())
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 2
    for name, version in pkg["devDependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: pin an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    ignored = (REPO / ".gitignore").read_text()
    assert "/python/gcdance/web/dist/" in ignored and "node_modules/" in ignored


@needs_assets
def test_built_assets_match_the_sources() -> None:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_web
    finally:
        sys.path.pop(0)
    info = web.build_info()
    assert info["source_sha256"] == build_web.source_hash(), (
        "the built web assets are older than web/: run python tools/build_web.py"
    )
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())
    for name, version in info["versions"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    index = web.asset_text("index.html")
    assert 'src="assets/app.js"' in index and 'href="assets/app.css"' in index
    assert web.asset_path("assets/app.js").stat().st_size > 100_000  # three.js is in it


# --------------------------------------------------------------------------- the file (fast)
@needs_assets
def test_saved_page_is_self_contained(tmp_path: Path) -> None:
    song = write_song(tmp_path / "my song.wav", seconds=8.0)
    dance = synthetic_dance(3.0, audio=AudioInfo(path=str(song), start=2.0))
    out = dance.save(tmp_path / "dance.html")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "<!--GCDANCE:" not in page
    # Nothing is loaded from anywhere: no external scripts, styles, fonts or media.
    assert not re.search(r"<(script|link|img|audio|video|source|iframe)[^>]*\s(src|href)=", page)
    assert "@import" not in page and "url(http" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None and "default-src 'none'" in csp.group(1)
    assert "connect-src data: blob:" in csp.group(1)
    assert "<title>Popping dance \u2014 \u201crobotic hits\u201d \u00b7 gcdance</title>" in page

    data = blocks(page)
    from gcdance.io.gltf import glb_bytes

    assert base64.b64decode(data["glb"]) == glb_bytes(dance)
    meta = json.loads(data["meta"])
    assert meta["genre"] == "Popping" and meta["seconds"] == pytest.approx(3.0)
    assert meta["audio"] == {"name": "my song.wav", "start": 2.0, "mime": "audio/mpeg"}
    assert str(tmp_path) not in page  # the song's folder (a private path) is not written

    mime, mp3 = audio_block(page)
    assert mime == "audio/mpeg"
    (tmp_path / "cut.mp3").write_bytes(mp3)
    cut, sr = sf.read(tmp_path / "cut.mp3", always_2d=True)
    assert cut.shape[0] / sr == pytest.approx(3.0, abs=0.03)  # the dance's length, not the song's
    # The cut starts 2 s into the song: the clicks (every 0.5 s) line up with the source's.
    src, src_sr = sf.read(song, always_2d=True)
    env = np.abs(cut[:, 0])
    want = np.abs(src[round(2.0 * src_sr):round(5.0 * src_sr), 0])
    n = min(len(env), len(want)) // 441 * 441
    corr = np.corrcoef(env[:n].reshape(-1, 441).mean(1), want[:n].reshape(-1, 441).mean(1))[0, 1]
    assert corr > 0.9
    assert len(page) < 2_500_000  # compact: MP3, not WAV


@needs_assets
def test_prompt_text_cannot_break_the_page(tmp_path: Path) -> None:
    evil = '</script><script>alert(1)</script><!--GCDANCE:GLB--> & "q"'
    page = synthetic_dance(1.0, prompt=evil).save(tmp_path / "d.html").read_text()
    assert page.count("<script") == 4  # the three data blocks and the player, nothing more
    assert "alert(1)</script>" not in page
    assert json.loads(blocks(page)["meta"])["prompt"] == evil
    title = re.search(r"<title>(.*)</title>", page)
    assert title is not None and "&lt;/script&gt;" in title.group(1)
    custom = synthetic_dance(1.0).save(tmp_path / "t.html", title="A <b>title</b>").read_text()
    assert "<title>A &lt;b&gt;title&lt;/b&gt;</title>" in custom


@needs_assets
def test_a_dance_without_music_says_so(tmp_path: Path) -> None:
    page = synthetic_dance(1.0, audio=None).save(tmp_path / "silent.html").read_text()
    assert audio_block(page) == ("", b"")
    meta = json.loads(blocks(page)["meta"])
    assert meta["audio"] is None and "audio in memory" in meta["audio_note"]

    song = write_song(tmp_path / "s.wav", seconds=3.0)
    dance = synthetic_dance(1.0, audio=AudioInfo(path=str(song)))
    page = dance.save(tmp_path / "off.html", audio=False).read_text()
    assert audio_block(page) == ("", b"")
    assert "without music" in json.loads(blocks(page)["meta"])["audio_note"]


@needs_assets
def test_music_problems_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moved = synthetic_dance(1.0, audio=AudioInfo(path=str(tmp_path / "gone.mp3")))
    with pytest.raises(AudioNotFoundError, match="audio=False"):
        moved.save(tmp_path / "a.html")
    song = write_song(tmp_path / "short.wav", seconds=2.0)
    late = synthetic_dance(1.0, audio=AudioInfo(path=str(song), start=5.0))
    with pytest.raises(EmptyAudioError, match="past the end"):
        late.save(tmp_path / "b.html")
    # A format whose length libsndfile cannot tell: ffmpeg's empty output says it.
    import gcdance.io.html as html_mod

    with monkeypatch.context() as m:
        m.setattr(html_mod, "_source_seconds", lambda path: None)
        with pytest.raises(EmptyAudioError, match="past the end"):
            late.save(tmp_path / "b.html")
    with pytest.raises(InputError, match="audio_start"):
        late.save(tmp_path / "c.html", audio_start=-1)
    with pytest.raises(InputError, match="takes: audio, audio_start, title, ffmpeg"):
        late.save(tmp_path / "d.html", volume=3)
    with pytest.raises(GCDanceError, match="not found"):
        late.save(tmp_path / "e.html", audio_start=0, ffmpeg="/nonexistent/ffmpeg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.wav"]  # nothing half-written


@needs_assets
def test_wav_fallback_without_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gcdance.io.render

    def no_ffmpeg(ffmpeg: Any = None) -> str:
        raise GCDanceError("no ffmpeg here")

    monkeypatch.setattr(gcdance.io.render, "find_ffmpeg", no_ffmpeg)
    song = write_song(tmp_path / "s.flac", seconds=5.0, sr=96000, channels=6)
    dance = synthetic_dance(2.0, audio=AudioInfo(path=str(song), start=1.0))
    with pytest.warns(RuntimeWarning, match="WAV.*no ffmpeg here"):
        page = dance.save(tmp_path / "w.html").read_text()
    mime, wav = audio_block(page)
    assert mime == "audio/wav"
    data, sr = sf.read(io.BytesIO(wav), always_2d=True)
    assert sr == 48000 and data.shape[1] == 1  # capped rate, surround mixed down
    assert data.shape[0] / sr == pytest.approx(2.0, abs=1e-3)

    # An in-memory song is cut the same way.
    samples, rate = sf.read(song, always_2d=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        page = dance.save(tmp_path / "m.html", audio=(samples[:, :2], rate)).read_text()
    mime, wav = audio_block(page)
    data, sr = sf.read(io.BytesIO(wav), always_2d=True)
    assert mime == "audio/wav" and data.shape == (96000, 2) and sr == 48000


@needs_assets
def test_surround_high_rate_music_becomes_browser_mp3(tmp_path: Path) -> None:
    song = write_song(tmp_path / "s.wav", seconds=3.0, sr=96000, channels=6)
    dance = synthetic_dance(2.0, audio=AudioInfo(path=str(song)))
    mime, mp3 = audio_block(dance.save(tmp_path / "x.html").read_text())
    (tmp_path / "x.mp3").write_bytes(mp3)
    info = sf.info(tmp_path / "x.mp3")
    assert mime == "audio/mpeg" and info.channels == 2 and info.samplerate <= 48000
    assert info.duration == pytest.approx(2.0, abs=0.03)


# ------------------------------------------------------------------------ in a real browser
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need Playwright: pip install playwright"
    )
    if CHROMIUM is None:
        pytest.skip("the browser tests need Chromium: apt-get install -y chromium")
    if not web.assets_built():
        pytest.skip("the web assets are not built: python tools/build_web.py (or pip install .)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class OfflinePage:
    """A page that opens a local file with every network request blocked and recorded, and
    collects console errors."""

    def __init__(self, browser: Any, path: Path) -> None:
        # Small: software WebGL draws a few frames a second, fewer on a bigger canvas.
        self.context = browser.new_context(viewport={"width": 640, "height": 420})
        self.blocked: list[str] = []
        self.errors: list[str] = []
        url = path.resolve().as_uri()

        def guard(route: Any) -> None:
            if route.request.url == url:
                route.continue_()
            else:
                self.blocked.append(route.request.url)
                route.abort()

        self.context.route("**/*", guard)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.page.goto(url)
        self.wait("window.gcdance && (window.gcdance.ready || window.gcdance.error)", 60)
        assert self.eval("window.gcdance.error || null") is None

    def wait(self, condition: str, seconds: float) -> None:
        # A function, not an expression: Playwright evaluates expressions with eval(), which
        # the page's Content-Security-Policy (rightly) forbids.
        self.page.wait_for_function(f"() => ({condition})", timeout=seconds * 1000)

    def eval(self, expr: str) -> Any:
        return self.page.evaluate(expr)

    def state(self) -> dict[str, Any]:
        return self.eval("""(() => { const p = window.gcdance.player; return {
            time: p.time, mixer: p.mixerTime, action: p.actionTime, audio: p.audioTime,
            playing: p.playing, paused: p.audioElement.paused, frames: p.renderedFrames,
            last: p.lastFrame, slider: Number(document.querySelector('.gcd-timeline').value),
            note: document.querySelector('.gcd-note').textContent }; })()""")

    def canvas(self) -> np.ndarray:
        """The canvas' pixels (downscaled to 320 wide), read in the page right after the
        player draws a frame: a WebGL canvas keeps its picture only until it is composited,
        and a screenshot takes seconds while software WebGL renders."""
        from PIL import Image

        url = self.page.evaluate("""() => new Promise((resolve) => {
            const p = window.gcdance.player;
            p.requestRender();
            // Registered after the player's own callback for the next frame, so it runs
            // right after that frame is drawn.
            requestAnimationFrame(() => {
                const src = p.renderer.domElement;
                const c = document.createElement('canvas');
                c.width = 320;
                c.height = Math.round(320 * src.height / src.width);
                c.getContext('2d').drawImage(src, 0, 0, c.width, c.height);
                resolve(c.toDataURL('image/png'));  // a string crosses to Python quickly
            });
        })""")
        png = base64.b64decode(url.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)

    def wait_frames(self, more: int = 2) -> None:
        """Until the player has drawn ``more`` further pictures (software WebGL is slow)."""
        n = self.eval("window.gcdance.player.renderedFrames")
        self.wait(f"window.gcdance.player.renderedFrames >= {n + more}", 20)

    def close(self) -> None:
        self.context.close()


SECONDS = 8.0  # the generated dance: long enough to pause before it ends on a slow machine


def changed(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels that differ visibly."""
    return float((np.abs(a - b).max(axis=2) > 24).mean())


@pytest.fixture(scope="module")
def generated_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dance from the default model, a few seconds of a real song (MIT licensed)."""
    immich = pytest.importorskip("immich_memories_music",
                                 reason="needs real music: pip install immich-memories-music")
    import gcdance

    song = Path(immich.tracks_dir()) / "energetic" / "energetic_electronic_2.opus"
    dance = gcdance.Generator(threads=1).generate(
        str(song), prompt="energetic hip-hop with sharp arm hits", seed=0, start=20.0,
        duration=SECONDS,
    )
    return dance.save(tmp_path_factory.mktemp("html") / "dance.html")


@pytest.mark.slow
def test_saved_dance_plays_offline_in_a_browser(browser: Any, generated_page: Path) -> None:
    view = OfflinePage(browser, generated_page)
    try:
        s = view.state()
        assert s["playing"] is False and s["time"] == 0 and s["audio"] == pytest.approx(0)
        assert s["note"] == ""  # it has music
        still = view.canvas()
        # WebGL draws (here on software rendering): a figure, a floor, not a blank canvas.
        assert still.std() > 10 and len(np.unique(still.reshape(-1, 3), axis=0)) > 200

        view.page.click(".gcd-big-play")
        view.wait("window.gcdance.player.audioTime > 0.3", 10)
        view.wait_frames()
        first = view.canvas()
        a0, t0 = view.state()["audio"], time.monotonic()
        time.sleep(1.0)
        a1, t1 = view.state()["audio"], time.monotonic()
        view.wait_frames()
        second = view.canvas()
        s = view.state()
        assert s["playing"] and not s["paused"] and s["time"] < SECONDS - 1.0, s
        # The audio element is the clock, and it runs at the speed of the wall clock.
        assert 0.7 < (a1 - a0) / (t1 - t0) < 1.3
        assert changed(still, first) > 0.002 and changed(first, second) > 0.002
        # Each picture shows the pose of the music's time when it was drawn.
        assert abs(s["last"]["pose"] - s["last"]["audio"]) < 0.12

        # Pause: the picture, the pose and the music stop together.
        view.page.click(".gcd-play")
        paused = view.state()
        assert not paused["playing"] and paused["paused"], (s, paused)
        assert paused["mixer"] == pytest.approx(paused["audio"], abs=1e-3)
        picture = view.canvas()
        time.sleep(0.8)
        later = view.state()
        assert later["audio"] == pytest.approx(paused["audio"], abs=1e-6)
        assert later["mixer"] == pytest.approx(paused["mixer"], abs=1e-6)
        assert changed(picture, view.canvas()) == 0.0

        # Seek by clicking the timeline (paused): both jump to the clicked time.
        bar = view.page.locator(".gcd-timeline")
        box = bar.bounding_box()
        bar.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
        s = view.state()
        assert 0.65 * SECONDS < s["slider"] < 0.85 * SECONDS
        assert s["mixer"] == pytest.approx(s["slider"], abs=1e-3)
        assert s["audio"] == pytest.approx(s["slider"], abs=1e-3)
        assert s["action"] == pytest.approx(s["slider"], abs=1e-3)
        assert not s["playing"]
        # The picture of the new time is drawn (once: paused, nothing else is).
        view.wait(f"Math.abs(window.gcdance.player.lastFrame.pose - {s['slider']}) < 1e-3", 10)
        assert changed(picture, view.canvas()) > 0.002  # another pose is shown

        # Back to the start and play (keyboard: Home, k).
        view.page.locator(".gcd-player").press("Home")
        view.page.locator(".gcd-player").press("k")
        view.wait("window.gcdance.player.audioTime > 0.4", 10)
        # Pressing the thumb without moving it pauses only while it is held.
        s = view.state()
        x = box["x"] + 8 + (box["width"] - 16) * s["slider"] / SECONDS  # the thumb's centre
        view.page.mouse.move(x, box["y"] + box["height"] / 2)
        view.page.mouse.down()
        assert not view.state()["playing"]
        view.page.mouse.up()
        view.wait("window.gcdance.player.playing", 5)
        # Seek while playing (a click ahead on the timeline): the music and the pose jump
        # together and it plays on.
        bar.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
        view.wait("window.gcdance.player.playing", 5)
        view.wait_frames()
        s = view.state()
        assert s["playing"] and 0.65 * SECONDS < s["audio"] < SECONDS, s
        assert abs(s["last"]["pose"] - s["last"]["audio"]) < 0.12

        # It plays to the end and stops there.
        view.wait("!window.gcdance.player.playing", 15)
        s = view.state()
        assert s["time"] == pytest.approx(SECONDS, abs=0.05) and s["paused"]
        assert view.blocked == [] and view.errors == []
    finally:
        view.close()


@pytest.mark.slow
def test_silent_dance_plays_on_its_own_clock(browser: Any, tmp_path: Path) -> None:
    page = synthetic_dance(3.0).save(tmp_path / "silent.html")
    view = OfflinePage(browser, page)
    try:
        s = view.state()
        assert "plays silently" in s["note"] and s["audio"] is None
        still = view.canvas()
        view.page.click(".gcd-play")
        time.sleep(1.0)
        view.wait_frames()
        s = view.state()
        assert s["playing"] and 0.5 < s["time"] <= 3.0
        assert changed(still, view.canvas()) > 0.002
        view.wait("!window.gcdance.player.playing", 10)
        assert view.state()["time"] == pytest.approx(3.0)
        assert view.blocked == [] and view.errors == []
    finally:
        view.close()
