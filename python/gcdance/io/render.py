"""Skeleton videos of a dance: ``.mp4`` (H.264 + AAC audio, via an ffmpeg binary) or ``.gif``.

Drawing uses numpy and Pillow only (no matplotlib, no OpenGL):

- Perspective camera, vertical field of view ``fov`` degrees, ``distance`` metres from a target
  at hip height that follows the pelvis horizontally (a one-second moving average, so the
  dancer travels across a world-fixed floor grid without the camera shaking); seen from
  ``yaw`` degrees around the vertical (0 = the front of the SMPL rest pose, +Z) and
  ``elevation`` degrees above the horizon. Y is up; the floor is the lowest joint height of the
  whole dance.
- Bones are drawn back to front, coloured by side: the performer's left blue, right orange,
  centre light grey; finger bones thin and lighter. The head is a disc; a flat shadow of the
  skeleton on the floor shows contacts and jumps.
- 2x supersampling (``antialias=True``) smooths the lines.
- ``.mp4``: frames are piped as raw RGB to ffmpeg (libx264, yuv420p, ``crf``); the audio
  segment the dance was made for, ``[audio_start, audio_start + frames / fps)`` seconds of the
  song, is encoded as AAC. ffmpeg comes from ``imageio-ffmpeg`` (``pip install imageio-ffmpeg``,
  a static build in its wheel) or else ``ffmpeg`` on ``PATH``; ``ffmpeg=`` overrides both.
- ``.gif``: Pillow, a fixed palette; GIF delays are whole centiseconds, so 30 fps is written as
  the repeating delays 30, 40, 30 ms (exactly 30 frames per second on average). No audio.
  Pillow holds all frames in memory, so GIFs over 1 GiB of frames (about two minutes at
  640x480) are refused: use ``.mp4`` for long dances.

Output files are written atomically (a temporary file next to the target, then ``os.replace``).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import atomic_path
from ..errors import AudioNotFoundError, GCDanceError, InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from ..dance import Dance

__all__ = ["SkeletonRenderer", "find_ffmpeg", "render"]

VIDEO_SUFFIXES = (".mp4", ".gif")

_BACKGROUND = (24, 26, 32)
_FLOOR = (44, 48, 58)
_GRID = (70, 76, 90)
_SHADOW = (30, 32, 38)
_LEFT = (70, 150, 255)
_RIGHT = (255, 120, 60)
_CENTRE = (225, 225, 225)
_LEFT_FINGER = (150, 195, 255)
_RIGHT_FINGER = (255, 180, 140)
_TEXT = (200, 204, 214)

_BONE_RADIUS = 0.022  # metres: half the drawn width of a body bone
_FINGER_RADIUS = 0.007
_HEAD_RADIUS = 0.095
_GRID_STEP = 0.5  # metres between floor grid lines
_GRID_HALF = 6.0  # floor drawn within this many metres of the camera target
_NEAR = 0.05
_GIF_MAX_BYTES = 1 << 30


def _require_pillow() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise GCDanceError(
            "rendering needs Pillow, which is not installed: pip install Pillow "
            "(or pip install 'gcdance[render]')"
        ) from None
    return Image, ImageDraw, ImageFont


def find_ffmpeg(ffmpeg: str | os.PathLike[str] | None = None) -> str:
    """Path of an ffmpeg executable: ``ffmpeg`` if given, else imageio-ffmpeg's, else ``PATH``.

    Raises ``GCDanceError`` naming the pip command when there is none.
    """
    if ffmpeg is not None:
        p = shutil.which(os.fspath(ffmpeg))
        if p is None:
            raise GCDanceError(f"ffmpeg executable {os.fspath(ffmpeg)!r} not found")
        return p
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and os.path.isfile(exe):
            return str(exe)
    except (ImportError, RuntimeError, OSError):
        pass
    p = shutil.which("ffmpeg")
    if p is None:
        raise GCDanceError(
            "writing .mp4 needs an ffmpeg binary and none was found: pip install imageio-ffmpeg "
            "(ships one), or install ffmpeg on PATH, or write a .gif instead"
        )
    return p


def _clip_polygon_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Clip a convex polygon ``(N, 3)`` in camera coordinates to depth >= ``near``."""
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        p_in, q_in = p[2] >= near, q[2] >= near
        if p_in:
            out.append(p)
        if p_in != q_in:
            out.append(p + (near - p[2]) / (q[2] - p[2]) * (q - p))
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over axis 0 with edge padding (same length)."""
    if window <= 1 or len(x) <= 1:
        return x.copy()
    half = window // 2
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], half, 0)])
    c = np.cumsum(np.concatenate([np.zeros_like(x[:1]), padded]), axis=0)
    w = 2 * half + 1
    return (c[w:] - c[:-w]) / w


class SkeletonRenderer:
    """Draws frames of joint positions ``(frames, J, 3)`` (metres, Y-up) as Pillow images.

    ``parents``: parent index per joint (-1 for the root); ``joint_names`` decide the colours
    (``left_*`` / ``right_*``); joints from ``num_body_joints`` on are drawn as thin fingers.
    The camera conventions are in the module docstring.
    """

    def __init__(
        self,
        joints: np.ndarray,
        parents: Sequence[int],
        joint_names: Sequence[str],
        *,
        num_body_joints: int = 22,
        fps: float = 30.0,
        size: tuple[int, int] = (640, 480),
        fov: float = 40.0,
        distance: float = 3.8,
        yaw: float = 20.0,
        elevation: float = 10.0,
        antialias: bool = True,
    ) -> None:
        self._pil = _require_pillow()
        j = np.asarray(joints, dtype=np.float64)
        par = np.asarray(parents, dtype=np.int64)
        if j.ndim != 3 or j.shape[2] != 3 or j.shape[0] == 0:
            raise InputError(f"joints must have shape (frames, J, 3), got {j.shape}")
        if par.shape != (j.shape[1],) or len(joint_names) != j.shape[1]:
            raise InputError(
                f"{j.shape[1]} joints but {par.shape[0]} parents and {len(joint_names)} names"
            )
        if not np.isfinite(j).all():
            raise InputError("joints contain NaN or inf")
        w, h = (int(v) for v in size)
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise InputError(f"size must be (width, height) within 16..8192 pixels, got {size}")
        if not (5.0 <= fov <= 150.0 and distance > 0.5):
            raise InputError(f"fov must be in 5..150 degrees and distance > 0.5 m, got {fov}, "
                             f"{distance}")
        self.joints = j
        self.fps = float(fps)
        self.size = (w, h)
        self.ss = 2 if antialias else 1
        self.floor = float(j[..., 1].min())
        # camera target: smoothed pelvis x/z, fixed height above the floor
        target = _moving_average(j[:, 0, :], max(1, round(self.fps)))
        target[:, 1] = self.floor + 0.9
        yaw_r, el_r = math.radians(yaw), math.radians(elevation)
        back = np.array([math.sin(yaw_r) * math.cos(el_r), math.sin(el_r),
                         math.cos(yaw_r) * math.cos(el_r)])
        self.target = target
        self.eye = target + distance * back
        fwd = -back
        right = np.cross(fwd, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        self.basis = np.stack([right, up, fwd])  # rows: camera x, y, depth
        self.focal = 0.5 * h * self.ss / math.tan(math.radians(fov) / 2)
        # bones (child, parent), styles
        self.bones = np.array([(c, int(p)) for c, p in enumerate(par) if p >= 0], np.int64)
        names = [str(n) for n in joint_names]
        colours, radii = [], []
        for c, _ in self.bones:
            finger = c >= num_body_joints
            side = "left" if names[c].startswith("left_") else (
                "right" if names[c].startswith("right_") else "centre")
            colours.append({
                ("left", False): _LEFT, ("right", False): _RIGHT,
                ("left", True): _LEFT_FINGER, ("right", True): _RIGHT_FINGER,
            }.get((side, finger), _CENTRE))
            radii.append(_FINGER_RADIUS if finger else _BONE_RADIUS)
        self.colours = colours
        self.radii = np.array(radii)
        self.head = names.index("head") if "head" in names else None
        self.neck = names.index("neck") if "neck" in names else None
        self.body_joints = np.arange(min(num_body_joints, j.shape[1]))

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    def palette(self) -> list[tuple[int, int, int]]:
        """Every colour drawn and its blends with the background and floor (for GIF)."""
        base = [_LEFT, _RIGHT, _CENTRE, _LEFT_FINGER, _RIGHT_FINGER, _TEXT, _GRID, _SHADOW]
        out = [_BACKGROUND, _FLOOR]
        for bg in (_BACKGROUND, _FLOOR):
            for col in base:
                for a in (0.25, 0.5, 0.75, 1.0):
                    out.append(tuple(round(bg[i] + a * (col[i] - bg[i])) for i in range(3)))
        unique = list(dict.fromkeys(out))
        return unique[:256]

    def _to_camera(self, pts: np.ndarray, t: int) -> np.ndarray:
        """World points ``(..., 3)`` -> camera coordinates (right, up, depth)."""
        return (pts - self.eye[t]) @ self.basis.T

    def _screen(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera points -> pixel coordinates ``(..., 2)`` (supersampled) and depth."""
        z = np.maximum(cam[..., 2], _NEAR)
        w, h = self.size[0] * self.ss, self.size[1] * self.ss
        x = 0.5 * w + self.focal * cam[..., 0] / z
        y = 0.5 * h - self.focal * cam[..., 1] / z
        return np.stack([x, y], -1), z

    def _project(self, pts: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(..., 3)`` -> pixel coordinates ``(..., 2)`` (supersampled) and depth."""
        return self._screen(self._to_camera(pts, t))

    def frame(self, t: int, caption: str | None = None) -> PILImage.Image:
        """RGB image of frame ``t``."""
        image_mod, draw_mod, font_mod = self._pil
        w, h = self.size[0] * self.ss, self.size[1] * self.ss
        im = image_mod.new("RGB", (w, h), _BACKGROUND)
        dr = draw_mod.Draw(im)
        self._draw_floor(dr, t)
        pos = self.joints[t]
        # shadow on the floor
        shadow = pos.copy()
        shadow[:, 1] = self.floor
        sxy, sz = self._project(shadow, t)
        for k, (c, p) in enumerate(self.bones):
            width = max(1, round(self.radii[k] * 1.6 * self.focal / sz[c]))
            dr.line([tuple(sxy[p]), tuple(sxy[c])], fill=_SHADOW, width=width)
        # skeleton, far bones first
        xy, z = self._project(pos, t)
        depth = 0.5 * (z[self.bones[:, 0]] + z[self.bones[:, 1]])
        for k in np.argsort(-depth):
            c, p = self.bones[k]
            r = self.radii[k] * self.focal / depth[k]
            width = max(1, round(2 * r))
            col = self.colours[k]
            dr.line([tuple(xy[p]), tuple(xy[c])], fill=col, width=width)
            if r >= 1.5:  # round the joint ends
                for q in (p, c):
                    x0, y0 = xy[q]
                    dr.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=col)
        if self.head is not None:
            centre = pos[self.head]
            if self.neck is not None:
                d = pos[self.head] - pos[self.neck]
                n = np.linalg.norm(d)
                if n > 1e-6:
                    centre = centre + 0.45 * _HEAD_RADIUS * d / n
            hxy, hzs = self._project(centre[None], t)
            hx, hy, hz = float(hxy[0, 0]), float(hxy[0, 1]), float(hzs[0])
            rr = _HEAD_RADIUS * self.focal / hz
            dr.ellipse([hx - rr, hy - rr, hx + rr, hy + rr], fill=_CENTRE)
        if self.ss > 1:
            im = im.reduce(self.ss)
        if caption:
            draw_mod.Draw(im).text((8, 6), caption, fill=_TEXT, font=self._font(font_mod))
        return im

    def _font(self, font_mod: Any) -> Any:
        if not hasattr(self, "_cached_font"):
            size = max(10, self.size[1] // 32)
            try:
                font = font_mod.load_default(size=size)
            except (TypeError, OSError, ImportError):  # old Pillow or no FreeType
                font = font_mod.load_default()
            self._cached_font = font
        return self._cached_font

    def _draw_floor(self, dr: Any, t: int) -> None:
        """Floor square around the camera target and a world-fixed grid, clipped at the near
        plane (the floor reaches behind the camera)."""
        cx, cz = self.target[t, 0], self.target[t, 2]
        y = self.floor
        lo_x, hi_x, lo_z, hi_z = cx - _GRID_HALF, cx + _GRID_HALF, cz - _GRID_HALF, cz + _GRID_HALF
        quad = np.array([[lo_x, y, lo_z], [hi_x, y, lo_z], [hi_x, y, hi_z], [lo_x, y, hi_z]])
        poly = _clip_polygon_near(self._to_camera(quad, t), 2 * _NEAR)
        if len(poly) >= 3:
            dr.polygon([tuple(p) for p in self._screen(poly)[0]], fill=_FLOOR)
        width = max(1, self.ss)
        segs = []
        for gx in np.arange(math.ceil(lo_x / _GRID_STEP), math.floor(hi_x / _GRID_STEP) + 1):
            segs.append(((gx * _GRID_STEP, y, lo_z), (gx * _GRID_STEP, y, hi_z)))
        for gz in np.arange(math.ceil(lo_z / _GRID_STEP), math.floor(hi_z / _GRID_STEP) + 1):
            segs.append(((lo_x, y, gz * _GRID_STEP), (hi_x, y, gz * _GRID_STEP)))
        if not segs:
            return
        cam = self._to_camera(np.asarray(segs, dtype=np.float64), t)  # (S, 2, 3)
        a, b = cam[:, 0], cam[:, 1]
        za, zb = a[:, 2], b[:, 2]
        near = 2 * _NEAR
        keep = (za > near) | (zb > near)
        # move the endpoint behind the near plane onto it
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.clip((near - za) / (zb - za), 0.0, 1.0)
        a = np.where((za < near)[:, None], a + f[:, None] * (b - a), a)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.clip((near - zb) / (za - zb), 0.0, 1.0)
        b = np.where((zb < near)[:, None], b + g[:, None] * (cam[:, 0] - b), b)
        axy, _ = self._screen(a[keep])
        bxy, _ = self._screen(b[keep])
        for p0, p1 in zip(axy, bxy, strict=True):
            dr.line([tuple(p0), tuple(p1)], fill=_GRID, width=width)

    def frames(self, captions: Sequence[str | None] | None = None) -> Iterator[PILImage.Image]:
        """All frames in order."""
        for t in range(self.num_frames):
            yield self.frame(t, None if captions is None else captions[t])


# ------------------------------------------------------------------------------------- audio
def _write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    a = np.asarray(samples)
    if a.ndim == 2 and a.shape[0] <= 16 < a.shape[1]:
        a = a.T
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] > 16:
        raise InputError(f"audio array must be (samples,) or (samples, channels), got {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    pcm = (np.clip(np.nan_to_num(a.astype(np.float64)), -1.0, 1.0) * 32767.0).round()
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(pcm.shape[1])
        wf.setsampwidth(2)
        wf.setframerate(int(sr))
        wf.writeframes(pcm.astype("<i2").tobytes())


def dance_audio(dance: Dance, audio: Any, audio_start: float | None, use: str
                ) -> tuple[Path | tuple[Any, Any] | None, float]:
    """The music to go with a dance (a video, a player): ``(source, start_seconds)``, where
    ``source`` is a path, a ``(samples, sample_rate)`` pair, or None for silence (``audio=False``,
    or ``audio=None`` for a dance made from audio in memory). ``audio=None`` takes the dance's
    own file; ``use`` ("render with it", "embed it") completes the error messages."""
    info = dance.audio
    start = audio_start if audio_start is not None else (info.start if info else 0.0)
    try:
        start = float(start)
    except (TypeError, ValueError):
        raise InputError(f"audio_start must be a number of seconds, got {audio_start!r}") from None
    if not (math.isfinite(start) and start >= 0):
        raise InputError(f"audio_start must be a finite number >= 0 seconds, got {audio_start}")
    if audio is False:
        return None, start
    if audio is None:
        if info is None or info.path is None:
            return None, start
        if not os.path.isfile(info.path):
            raise AudioNotFoundError(
                f"the dance's audio file {info.path} does not exist (moved?); pass audio=PATH "
                f"to {use}, or audio=False for silence"
            )
        return Path(info.path), start
    if isinstance(audio, tuple):
        if len(audio) != 2:
            raise InputError("audio array input must be a (samples, sample_rate) pair")
        return audio, start
    if audio is True or not isinstance(audio, (str, os.PathLike)):
        raise InputError(f"audio must be a path, a (samples, sample_rate) pair, None or False, "
                         f"got {type(audio).__name__}")
    path = Path(os.fspath(audio))
    if not path.is_file():
        raise AudioNotFoundError(f"audio file {path} does not exist; give an existing file")
    return path, start


def _audio_input(
    audio: Any, dance: Dance, audio_start: float | None, seconds: float, tmpdir: Path
) -> list[str] | None:
    """ffmpeg input arguments for the audio segment, or None for a silent video."""
    audio, start = dance_audio(dance, audio, audio_start, "render with it")
    if audio is None:
        return None
    if isinstance(audio, tuple):
        samples, sr = audio
        sr = int(sr)
        if sr <= 0:
            raise InputError(f"audio sample rate must be positive, got {sr}")
        arr = np.asarray(samples)
        time_axis = 1 if (arr.ndim == 2 and arr.shape[0] <= 16 < arr.shape[1]) else 0
        i0 = round(start * sr)
        i1 = i0 + math.ceil(seconds * sr)
        seg = arr[:, i0:i1] if time_axis == 1 else arr[i0:i1]
        if seg.size == 0:
            raise InputError(
                f"audio_start {start:.2f} s is past the end of the audio array; nothing to mux"
            )
        wav = tmpdir / "audio.wav"
        _write_wav(wav, seg, sr)
        return ["-i", str(wav)]
    return ["-ss", f"{start:.6f}", "-t", f"{seconds:.6f}", "-i", str(audio)]


# ------------------------------------------------------------------------------------ render
def _captions(dance: Dance, show: bool) -> list[str | None] | None:
    if not show:
        return None
    head = dance.genre or ""
    if dance.prompt and dance.prompt != dance.genre:
        prompt = dance.prompt if len(dance.prompt) <= 48 else dance.prompt[:47] + "..."
        head = f"{head}  \"{prompt}\"" if head else f"\"{prompt}\""
    return [f"{head}  {t / dance.fps:6.2f} s".strip() for t in range(dance.num_frames)]


def render(
    dance: Dance,
    path: str | os.PathLike[str],
    *,
    audio: str | os.PathLike[str] | tuple[np.ndarray, int] | bool | None = None,
    audio_start: float | None = None,
    size: tuple[int, int] = (640, 480),
    fov: float = 40.0,
    distance: float = 3.8,
    yaw: float = 20.0,
    elevation: float = 10.0,
    antialias: bool = True,
    caption: bool = True,
    crf: int = 20,
    ffmpeg: str | os.PathLike[str] | None = None,
) -> Path:
    """Render ``dance`` as a skeleton video at its fps; the format follows ``path``'s suffix.

    Args:
        audio: ``.mp4`` only. None: the dance's own audio file (``dance.audio.path``) if it has
            one; a path or ``(samples, sample_rate)``: the song the dance was made for (the
            segment from ``audio_start`` is used); False: silent.
        audio_start: seconds into the song where the dance begins (default ``dance.audio.start``
            or 0). The muxed audio lasts as long as the video.
        size: ``(width, height)`` in pixels (even numbers for ``.mp4``).
        fov, distance, yaw, elevation: camera (degrees, metres; see the module docstring).
        antialias: 2x supersampling. caption: genre, prompt and time in the corner.
        crf: H.264 quality (0 best .. 51 worst). ffmpeg: explicit ffmpeg executable.
    Returns the path written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(
            f"cannot render to {p.name!r}: unknown suffix {p.suffix or '(none)'!r}; supported: "
            f"{', '.join(VIDEO_SUFFIXES)}"
        )
    w, h = (int(v) for v in size)
    if suffix == ".mp4" and (w % 2 or h % 2):
        raise InputError(f"H.264 video needs an even width and height, got {w}x{h}")
    if not (isinstance(crf, int) and 0 <= crf <= 51):
        raise InputError(f"crf must be an int in 0..51, got {crf!r}")
    skel = dance.skeleton
    renderer = SkeletonRenderer(
        dance.joints(), skel.parents, skel.joint_names,
        num_body_joints=dance.layout.num_body_joints, fps=dance.fps, size=(w, h), fov=fov,
        distance=distance, yaw=yaw, elevation=elevation, antialias=antialias,
    )
    captions = _captions(dance, caption)
    if suffix == ".gif":
        _write_gif(p, renderer, captions, dance.fps)
    else:
        _write_mp4(p, renderer, captions, dance, audio, audio_start, crf, find_ffmpeg(ffmpeg))
    return p


def _gif_delays(n: int, fps: float) -> list[int]:
    """Per-frame delays in ms, multiples of 10 whose running sum tracks ``t * 1000 / fps``."""
    ends = np.round(np.arange(1, n + 1) * 100.0 / fps).astype(np.int64) * 10  # centiseconds
    delays = np.diff(np.concatenate([[0], ends]))
    return [int(max(d, 10)) for d in delays]


def _write_gif(
    path: Path, renderer: SkeletonRenderer, captions: Sequence[str | None] | None, fps: float
) -> None:
    w, h = renderer.size
    need = renderer.num_frames * w * h  # Pillow keeps every palette frame until it writes
    if need > _GIF_MAX_BYTES:
        raise InputError(
            f"a GIF of {renderer.num_frames} frames at {w}x{h} needs about {need / 2**30:.1f} GiB "
            "of memory; write .mp4 instead, or pass a smaller size="
        )
    image_mod = renderer._pil[0]
    pal = renderer.palette()
    pal_img = image_mod.new("P", (1, 1))
    flat = [v for c in pal for v in c]
    pal_img.putpalette(flat + flat[-3:] * (256 - len(pal)))
    frames = [
        im.quantize(palette=pal_img, dither=image_mod.Dither.NONE)
        for im in renderer.frames(captions)
    ]
    with atomic_path(path) as tmp:
        frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:],
            duration=_gif_delays(len(frames), fps), loop=0, optimize=False, disposal=1,
        )


def _write_mp4(
    path: Path,
    renderer: SkeletonRenderer,
    captions: Sequence[str | None] | None,
    dance: Dance,
    audio: Any,
    audio_start: float | None,
    crf: int,
    exe: str,
) -> None:
    w, h = renderer.size
    seconds = renderer.num_frames / renderer.fps
    with tempfile.TemporaryDirectory(prefix="gcdance-render-") as td, atomic_path(path) as tmp:
        tmpdir = Path(td)
        audio_args = _audio_input(audio, dance, audio_start, seconds, tmpdir)
        cmd = [
            exe, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
            "-framerate", f"{renderer.fps:g}", "-i", "pipe:0",
        ]
        if audio_args:
            cmd += [*audio_args, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k"]
        cmd += [
            "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-f", "mp4", str(tmp),
        ]
        log = tmpdir / "ffmpeg.log"
        with open(log, "wb") as err:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err)
            except OSError as exc:
                raise GCDanceError(f"cannot start ffmpeg ({exe}): {exc}") from None
            assert proc.stdin is not None
            try:
                for im in renderer.frames(captions):
                    proc.stdin.write(im.tobytes())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            rc = proc.wait()
        if rc != 0:
            msg = log.read_text(errors="replace").strip()[-2000:]
            raise GCDanceError(f"ffmpeg failed (exit {rc}) writing {path.name}: {msg}")
