"""The ASGI app of ``gcdance serve``: :func:`create_app` (FastAPI; the API is in docs/serve.md).

How a ``POST /api/dances`` goes:

1. The body is read with its size bounded (:class:`BodyLimit`: 413 before reading when the
   declared length is too large, and while reading otherwise); the form fields are checked.
2. A place in the bounded work queue is taken (:mod:`gcdance.serve.work`), else 503 with
   ``Retry-After``.
3. The upload is copied into a fresh build folder of the store and decoded (in a thread): not
   decodable, empty, shorter than a second or longer than the limit gives a 422 before any
   generation work.
4. A worker thread generates with the one shared ``Generator`` (its progress goes to the job
   record, if the client named a job), saves the ``.npz`` and the metadata, moves the folder
   into the store in one rename, evicts the oldest dances past the bounds and marks the job
   done. The request awaits that through ``asyncio.shield``: a client that disconnects loses
   nothing, its dance is stored and ``GET /api/jobs/{job}`` gives its id.

Other formats are written on first request (``.mp4`` renders go through the work queue), each
atomically. Errors are JSON ``{"error": "..."}`` naming the problem and the fix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import logging
import math
import re
import shutil
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..conditioning.audio import SAMPLE_RATE
from ..errors import AudioError, GCDanceError, InputError
from .settings import ServeSettings
from .store import FORMATS, ID_PATTERN, META_FILE, DanceStore
from .work import Busy, ShuttingDown, WorkQueue

__all__ = ["ApiError", "BodyLimit", "create_app"]

log = logging.getLogger("gcdance.serve")

MAX_PROMPT_CHARS = 1000
FIELDS = ("audio", "prompt", "seed", "steps", "start", "duration", "job")
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small fields, beyond the audio file
_PROGRESS_EVERY_S = 0.2  # job records are rewritten at most this often while generating
_MEDIA_TYPES = {"glb": "model/gltf-binary", "bvh": "application/octet-stream",
                "npz": "application/octet-stream", "mp4": "video/mp4",
                "html": "text/html; charset=utf-8"}
_INLINE = {"mp4", "html"}  # shown by the browser; the others download
_SLOW_FORMATS = {"mp4", "html"}  # through the work queue: video encoding, music transcoding
# The dance's HTML player runs in an opaque origin: its scripts work, but they cannot reach
# this server's origin (cookies, other pages) whatever a prompt put into the page.
_HTML_CSP = "sandbox allow-scripts allow-downloads allow-popups"


class ApiError(Exception):
    """An HTTP error answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class UploadTooLarge(Exception):
    """The request body ran past the upload limit while it was read."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _too_large_message(limit_mb: float) -> str:
    return (f"the upload is larger than this server's limit of {limit_mb:g} MiB; send a "
            "smaller file (a compressed format such as MP3 or OGG, or a shorter excerpt)")


class BodyLimit:
    """ASGI middleware: a ``POST .../api/dances`` body may hold at most ``limit`` bytes.

    A declared ``Content-Length`` past it is answered 413 before the body is read; a body
    without one (chunked) is counted as it arrives and stops with :class:`UploadTooLarge`.
    """

    def __init__(self, app: ASGIApp, limit: int, file_limit_mb: float) -> None:
        self.app = app
        self.limit = limit
        self.file_limit_mb = file_limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" \
                or not scope["path"].rstrip("/").endswith("/api/dances"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = _error(413, _too_large_message(self.file_limit_mb),
                              {"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise UploadTooLarge()
            return message

        await self.app(scope, limited, send)


# ---------------------------------------------------------------------------------- requests


@dataclass
class _Fields:
    prompt: str
    seed: int
    steps: int | None
    start: float | None
    duration: float | None
    job: str | None


@dataclass
class _Generation:
    """One accepted request, handed to a worker thread (which then owns ``folder``)."""

    dance_id: str
    folder: Path  # the build folder in the store's tmp/
    audio_file: str  # its name inside the folder
    audio_name: str  # the client's file name (metadata only)
    samples: np.ndarray  # the decoded segment, mono at SAMPLE_RATE
    source_rate: int
    fields: _Fields
    steps: int


def _field(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise ApiError(400, f"the form field '{name}' is given {len(values)} times; give it once")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise ApiError(400, f"'{name}' must be a plain form field, not a file")
    value = value.strip()
    return value or None  # an empty field (as HTML forms send them) is the default


def _integer(text: str | None, name: str, low: int, high: int) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"\+?\d{1,20}", text) or not low <= int(text) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}, got {text[:40]!r}")
    return int(text)


def _seconds(text: str | None, name: str, allow_zero: bool) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ApiError(400, f"{name} must be a number of seconds {bound}, got {text[:40]!r}")
    return value


def _parse_fields(form: FormData, settings: ServeSettings) -> _Fields:
    unknown = sorted(set(form.keys()) - set(FIELDS))
    if unknown:
        raise ApiError(400, f"unknown form field(s) {', '.join(map(repr, unknown))}; the fields "
                            f"are {', '.join(FIELDS)}")
    prompt = _field(form, "prompt")
    if prompt is None:
        raise ApiError(400, "no prompt: send the form field 'prompt' with a genre name (GET "
                            "/api/genres lists them) or a description such as 'smooth waves "
                            "and robotic hits'")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(400, f"the prompt has {len(prompt)} characters; at most "
                            f"{MAX_PROMPT_CHARS} are accepted")
    job = _field(form, "job")
    if job is not None and not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", job):
        raise ApiError(400, f"job must be 8 to 64 letters, digits, '-' or '_' (a random id of "
                            f"the client's choosing, e.g. a UUID), got {job[:80]!r}")
    return _Fields(
        prompt=prompt,
        seed=_integer(_field(form, "seed"), "seed", 0, 2**63 - 1) or 0,
        steps=_integer(_field(form, "steps"), "steps", 1, settings.max_steps),
        start=_seconds(_field(form, "start"), "start", allow_zero=True),
        duration=_seconds(_field(form, "duration"), "duration", allow_zero=False),
        job=job)


def _upload(form: FormData, settings: ServeSettings) -> UploadFile:
    values = form.getlist("audio")
    if not values:
        raise ApiError(400, "no audio: send the song as the multipart file field 'audio' "
                            "(curl -F audio=@song.mp3 ...)")
    if len(values) > 1:
        raise ApiError(400, "send one audio file (the field 'audio' is given more than once)")
    upload = values[0]
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "'audio' must be a file upload (a multipart part with a file name, "
                            "curl -F audio=@song.mp3), not a text field")
    name = upload.filename or "upload"
    size = upload.size
    if size is None:  # older Starlette: measure the spooled file
        upload.file.seek(0, 2)
        size = upload.file.tell()
    if size == 0:
        raise ApiError(422, f"the uploaded audio file {name!r} is empty (0 bytes); send the song "
                            "itself")
    if size > settings.max_upload_bytes:
        raise ApiError(413, _too_large_message(settings.max_upload_mb))
    return upload


def _audio_suffix(filename: str | None) -> str:
    """The upload's suffix when it is a plain one (".mp3"), else none: only the server names
    files in the store."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _copy(src: Any, dst: Path) -> None:
    src.seek(0)
    with open(dst, "wb") as fh:
        shutil.copyfileobj(src, fh, 1 << 20)


def _decode(path: Path, client_name: str, start: float | None, duration: float | None,
            max_seconds: float) -> tuple[np.ndarray, int]:
    """The segment to dance to, mono at SAMPLE_RATE, and the file's sample rate. Never decodes
    more than the limit (plus a second to tell "too long")."""
    import soundfile as sf

    from ..conditioning.audio import load_audio

    want = duration if duration is not None and duration <= max_seconds else max_seconds + 1.0
    try:
        samples = load_audio(str(path), start=start, duration=want)
        rate = int(sf.info(str(path)).samplerate)
    except AudioError as exc:
        # The message names the store's file; the client knows its own file name.
        message = str(exc)
        for own in (f"'{path}'", str(path), f"'{path.name}'"):
            message = message.replace(own, repr(client_name))
        raise type(exc)(message) from None
    except (RuntimeError, OSError) as exc:  # soundfile.info on a file load_audio accepted
        raise AudioError(f"cannot read the audio file {client_name!r}: {exc}") from None
    seconds = samples.shape[0] / SAMPLE_RATE
    if seconds > max_seconds + 1e-6:
        where = f" from start={start:g} s" if start else ""
        raise AudioError(f"the music{where} is longer than this server's limit of "
                         f"{max_seconds:g} s; pass a duration of at most {max_seconds:g} s (and "
                         "a start) to pick the part to dance to, or send a shorter file")
    return samples, rate


def _url(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '').rstrip('/')}{path}"


def _result(request: Request, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a stored dance (what ``POST /api/dances`` answers)."""
    keys = ("id", "genre", "genre_probs", "seconds", "fps", "prompt", "seed", "steps", "job")
    out = {k: meta[k] for k in keys if meta.get(k) is not None}
    out["files"] = {fmt: _url(request, f"/api/dances/{meta['id']}.{fmt}") for fmt in FORMATS}
    return out


# -------------------------------------------------------------------------------- the server


class _Server:
    """Everything one app instance holds: settings, the model, the store, the work queue."""

    def __init__(self, settings: ServeSettings, generator: Any | None) -> None:
        self.settings = settings
        self.generator = generator
        self.store = DanceStore(settings.store, settings.max_dances, settings.max_store_bytes,
                                settings.job_ttl_s)
        self.work = WorkQueue(settings.workers, settings.queue)
        self._inflight: dict[tuple[str, str], asyncio.Future[Path]] = {}
        self._last_prune = 0.0

    # ------------------------------------------------------------------------ start and stop
    def start(self) -> None:
        """Load the model (unless given), sweep leftovers of killed processes, warm up."""
        removed = self.store.sweep()
        if removed:
            log.info("removed %d leftovers of interrupted work from %s", removed,
                     self.store.root)
        if self.generator is None:
            from ..engine.generator import Generator

            self.generator = Generator(self.settings.bundle, provider=self.settings.provider,
                                       threads=self.settings.engine_threads())
        if self.settings.warmup:
            t0 = time.perf_counter()
            self.generator.choose_genre("warm up the text encoder")
            self.generator.generate((_warmup_clicks(), SAMPLE_RATE), "hiphop", steps=1)
            log.info("model warmed up in %.1f s", time.perf_counter() - t0)
        log.info("serving %r; store %s (%s)", self.generator, self.store.root,
                 ", ".join(f"{k}={v}" for k, v in self.settings.limits().items()))

    def begin_shutdown(self) -> None:
        self.work.begin_shutdown()

    def stop(self) -> None:
        """Cancel what still runs (uvicorn waited ``shutdown_grace_s`` for requests first) and
        wait until every worker has cleaned up."""
        self.work.cancel_running()
        self.work.join()

    # --------------------------------------------------------------------------- generation
    def _job_update(self, job: str | None, **record: Any) -> None:
        if job is None:
            return
        try:
            self.store.put_job(job, {**record, "updated": time.time()})
        except (OSError, InputError) as exc:  # progress is a courtesy; never fail a dance
            log.warning("cannot update job %s: %s", job, exc)

    def produce(self, req: _Generation) -> dict[str, Any]:
        """Worker thread: generate, store, evict; owns ``req.folder`` (stored or deleted)."""
        from ..dance import AudioInfo

        f = req.fields
        last = [0.0]
        done = [0]

        def progress(step: int, steps: int) -> bool:
            now = time.monotonic()
            done[0] = step
            if step >= steps or now - last[0] >= _PROGRESS_EVERY_S:
                last[0] = now
                self._job_update(f.job, state="running", step=step, steps=steps)
            return not self.work.cancelled.is_set()

        t0 = time.perf_counter()
        try:
            self._job_update(f.job, state="running", step=0, steps=req.steps)
            dance = self.generator.generate((req.samples, SAMPLE_RATE), f.prompt, seed=f.seed,
                                            steps=f.steps, progress=progress)
            # The audio went in decoded; record what it was (the client's file name).
            dance = dataclasses.replace(dance, audio=AudioInfo(
                path=req.audio_name, start=f.start or 0.0, duration=dance.duration,
                sample_rate=req.source_rate))
            dance.save(req.folder / "dance.npz")
            meta = {"id": req.dance_id, "genre": dance.genre, "genre_probs": dance.genre_probs,
                    "seconds": round(dance.duration, 6), "fps": dance.fps,
                    "frames": dance.num_frames, "prompt": f.prompt, "seed": f.seed,
                    "steps": int(dance.settings["steps"]), "start": f.start or 0.0,
                    "duration": f.duration, "audio": req.audio_file,
                    "audio_name": req.audio_name, "job": f.job, "created": time.time()}
            self.store.write_json(req.folder / META_FILE, meta)
            self.store.commit(req.folder, req.dance_id)
        except BaseException as exc:
            shutil.rmtree(req.folder, ignore_errors=True)
            if self.work.cancelled.is_set():  # stopped by the shutdown, not by its input
                self._job_update(f.job, state="failed", step=done[0], steps=req.steps,
                                 status=503, error="cancelled: the server shut down before the "
                                                   "dance was finished; send it again")
                raise ShuttingDown() from None
            status, message = _status_of(exc)
            self._job_update(f.job, state="failed", step=done[0], steps=req.steps,
                             error=message, status=status)
            raise
        try:
            evicted = self.store.evict(keep={req.dance_id})
            if evicted:
                log.info("evicted %d old dance(s) to stay within the store's bounds",
                         len(evicted))
        except OSError as exc:  # the dance is stored; eviction is retried next time
            log.warning("eviction failed: %s", exc)
        self._job_update(f.job, state="done", id=req.dance_id, step=meta["steps"],
                         steps=meta["steps"])
        log.info("dance %s: %.1f s of %s in %.1f s (%d steps)", req.dance_id,
                 meta["seconds"], meta["genre"], time.perf_counter() - t0, meta["steps"])
        return meta

    def skip(self, req: _Generation) -> None:
        """A queued generation dropped at shutdown: clean up as :meth:`produce` would."""
        shutil.rmtree(req.folder, ignore_errors=True)
        self._job_update(req.fields.job, state="failed", step=0, steps=req.steps, status=503,
                         error="cancelled: the server shut down before the dance started; "
                               "send it again")

    def prune_jobs(self) -> None:
        now = time.monotonic()
        if now - self._last_prune > 60.0:
            self._last_prune = now
            self.store.prune_jobs()

    # ------------------------------------------------------------------------------ formats
    def write_format(self, dance_id: str, fmt: str) -> Path:
        """Worker thread: write the dance's ``fmt`` file (atomically) unless it exists."""
        from ..dance import SAVE_SUFFIXES, Dance

        target = self.store.file(dance_id, fmt)
        if target.is_file():
            return target
        if f".{fmt}" not in SAVE_SUFFIXES:
            raise ApiError(501, f"this server cannot write .{fmt} files (this gcdance's "
                                f"Dance.save writes {', '.join(SAVE_SUFFIXES)}); the other "
                                "formats of the dance are available")
        folder = self.store.folder(dance_id)
        meta = self.store.meta(dance_id)
        if meta is None:
            raise ApiError(404, _gone(dance_id, self.settings))
        dance = Dance.load(folder / "dance.npz")
        options: dict[str, Any] = {}
        if fmt in ("mp4", "html"):  # the music, from the store (the dance names the client's)
            audio = str(meta.get("audio", ""))
            if not re.fullmatch(r"audio(\.[a-z0-9]{1,8})?", audio):
                raise InputError(f"dance {dance_id}'s metadata names no stored music")
            options = {"audio": str(folder / audio), "audio_start": float(meta["start"])}
        dance.save(target, **options)
        return target

    async def ensure_format(self, dance_id: str, fmt: str) -> Path:
        """The dance's ``fmt`` file, written first if needed (once per process at a time)."""
        target = self.store.file(dance_id, fmt)
        if target.is_file():
            return target
        key = (dance_id, fmt)
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._make_format(dance_id, fmt))
            self._inflight[key] = pending
            pending.add_done_callback(lambda task: (
                self._inflight.pop(key, None),
                task.cancelled() or task.exception()))  # retrieved even if nobody waits
        return await asyncio.shield(pending)

    async def _make_format(self, dance_id: str, fmt: str) -> Path:
        if fmt in _SLOW_FORMATS:
            ticket = self.work.admit()
            path = await _await(self.work.submit(ticket, self.write_format, dance_id, fmt))
        else:
            path = await run_in_threadpool(self.write_format, dance_id, fmt)
        await run_in_threadpool(self.store.evict, {dance_id})
        return path


def _warmup_clicks() -> np.ndarray:
    """Two seconds of noise bursts: music enough that every feature's code path runs (silence
    skips some, leaving their first-use compilation to the first request)."""
    rng = np.random.default_rng(0)
    pulses = np.zeros(2 * SAMPLE_RATE, np.float32)
    pulses[:: SAMPLE_RATE // 2] = 1.0
    burst = np.exp(-np.arange(2000) / 200.0) * rng.standard_normal(2000)
    return (0.5 * np.convolve(pulses, burst)[: pulses.size]).astype(np.float32)


def _gone(dance_id: str, settings: ServeSettings) -> str:
    return (f"no dance {dance_id}: it was never made here or has been evicted (the store keeps "
            f"the newest {settings.max_dances} dances, {settings.max_store_mb:g} MiB); "
            "generate it again")


def _status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and message for an error of a generation."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, (Busy, ShuttingDown)):
        return 503, str(exc)
    if isinstance(exc, asyncio.CancelledError):
        return 503, ("the request was closed before its dance started (the client went away, "
                     "or the server is stopping); send it again")
    if isinstance(exc, AudioError):
        return 422, str(exc)
    if isinstance(exc, InputError):
        return 400, str(exc)
    if isinstance(exc, GCDanceError):
        return 500, f"generation failed: {exc}"
    return 500, "internal error while generating (details are in the server log)"


async def _await(future: Future[Any]) -> Any:
    """Await a worker's future without ever cancelling it: a request that goes away (client
    disconnect, shutdown) leaves the job running to completion."""
    wrapped = asyncio.wrap_future(future)
    # Retrieve the outcome even when nobody awaits it any more (no "never retrieved" noise).
    wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())
    return await asyncio.shield(wrapped)


# ------------------------------------------------------------------------------------- app

_POST_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["audio", "prompt"],
        "properties": {
            "audio": {"type": "string", "format": "binary",
                      "description": "the song: WAV, FLAC, MP3, OGG Vorbis or Opus"},
            "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS,
                       "description": "a genre name (GET /api/genres) or free text"},
            "seed": {"type": "integer", "minimum": 0, "default": 0},
            "steps": {"type": "integer", "minimum": 1,
                      "description": "sampling steps (default: the model's)"},
            "start": {"type": "number", "minimum": 0, "default": 0,
                      "description": "seconds into the song where the dance starts"},
            "duration": {"type": "number", "exclusiveMinimum": 0,
                         "description": "seconds of the song to dance to (default: to the "
                                        "end)"},
            "job": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$",
                    "description": "a random id of your choosing; GET /api/jobs/{job} then "
                                   "reports progress and the dance's id"},
        }}}},
}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}}}}}


def create_app(settings: ServeSettings | None = None, *, generator: Any | None = None
               ) -> FastAPI:
    """The ASGI app. ``generator``: a ``gcdance.Generator`` to share (else one is made from
    ``settings`` at start-up). Run it with uvicorn (``gcdance serve`` does)."""
    settings = settings or ServeSettings()
    server = _Server(settings, generator)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await run_in_threadpool(server.start)
        try:
            yield
        finally:
            server.begin_shutdown()
            await run_in_threadpool(server.stop)
            log.info("stopped; the store at %s holds only finished dances", server.store.root)

    app = FastAPI(title="gcdance", version=__version__, lifespan=lifespan,
                  description="Music + a text prompt -> a 3D dance (SMPL-H, 52 joints). "
                              "See docs/serve.md for the limits and the deployment.")
    app.state.gcdance = server
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + _FORM_OVERHEAD,
                       file_limit_mb=settings.max_upload_mb)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(UploadTooLarge)
    async def too_large(_: Request, __: UploadTooLarge) -> JSONResponse:
        return _error(413, _too_large_message(settings.max_upload_mb), {"Connection": "close"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.url.path}; the API is described at /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                             for e in exc.errors())
        return _error(400, f"bad request: {problems}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal server error (details are in the server log)")

    # ---------------------------------------------------------------------------- dances
    @app.post("/api/dances", openapi_extra={"requestBody": _POST_BODY}, tags=["dances"],
              responses={200: {"description": "the dance: {id, genre, genre_probs, seconds, "
                                              "fps, files: {glb, bvh, npz, mp4, html}}"},
                         400: _err("a bad form field"), 409: _err("the job id is taken"),
                         413: _err("the upload is too large"),
                         415: _err("the body is not multipart/form-data"),
                         422: _err("the audio is unusable (not audio, empty, too short or "
                                   "too long)"),
                         503: _err("busy or shutting down: retry after Retry-After seconds")})
    async def create_dance(request: Request) -> JSONResponse:
        """Generate a dance for an uploaded song and a prompt; answers when it is stored."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "multipart/form-data":
            raise ApiError(415, f"send the request as multipart/form-data (got "
                                f"{kind or 'no content type'}): curl -F audio=@song.mp3 -F "
                                "prompt=popping URL")
        async with request.form(max_files=1, max_fields=len(FIELDS),
                                max_part_size=_FORM_OVERHEAD) as form:
            fields = _parse_fields(form, settings)
            upload = _upload(form, settings)
            future = await _accept(request, server, fields, upload)
        try:
            meta = await _await(future)
        except Exception as exc:  # (a cancelled request leaves the job running, see _await)
            status, message = _status_of(exc)
            if status == 500 and not isinstance(exc, GCDanceError):
                log.error("generation failed", exc_info=exc)
            headers = {"Retry-After": str(getattr(exc, "retry_after", 5))} \
                if status == 503 else None
            return _error(status, message, headers)
        return JSONResponse(_result(request, meta))

    @app.head("/api/dances/{name:path}", include_in_schema=False)
    @app.get("/api/dances/{name:path}", tags=["dances"],
             responses={400: _err("not a dance id or format"),
                        404: _err("no such dance (or evicted)"),
                        501: _err("this server cannot write the format"),
                        503: _err("busy: retry after Retry-After seconds")})
    async def dance_file(request: Request, name: str) -> Response:
        """``{id}.{glb,bvh,npz,mp4,html}``: a file of the dance; ``{id}``: its JSON."""
        match = re.fullmatch(r"([^./]+)(?:\.([^./]+))?", name)
        if match is None or not ID_PATTERN.fullmatch(match.group(1)):
            raise ApiError(400, f"{name[:80]!r} is not a dance file: ask for "
                                "/api/dances/{id}.{fmt} with the 32-hex-digit id POST "
                                f"/api/dances returned and fmt one of {', '.join(FORMATS)}")
        dance_id, fmt = match.group(1), (match.group(2) or "").lower()
        if fmt and fmt not in FORMATS:
            raise ApiError(400, f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        try:
            meta = await run_in_threadpool(server.store.meta, dance_id)
        except InputError as exc:  # outside the store, or unreadable
            raise ApiError(400, str(exc)) from None
        if meta is None:
            raise ApiError(404, _gone(dance_id, settings))
        if not fmt:
            return JSONResponse(_result(request, meta))
        try:
            path = await server.ensure_format(dance_id, fmt)
        except Busy as exc:
            raise ApiError(503, f"{exc} (rendering the .{fmt} file)",
                           {"Retry-After": str(exc.retry_after)}) from None
        except ShuttingDown as exc:
            raise ApiError(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        except (OSError, GCDanceError) as exc:
            if not await run_in_threadpool(server.store.exists, dance_id):
                # Evicted (here or by another replica) while the file was being written.
                raise ApiError(404, _gone(dance_id, settings)) from None
            log.error("cannot write %s.%s", dance_id, fmt, exc_info=exc)
            raise ApiError(500, f"the server could not write the .{fmt} file of this dance "
                                "(details are in its log); the other formats may work") from None
        genre = re.sub(r"[^a-z0-9]+", "-", str(meta.get("genre") or "dance").lower())
        headers = {"Cache-Control": "public, max-age=31536000, immutable",
                   "X-Content-Type-Options": "nosniff"}
        if fmt == "html":
            headers["Content-Security-Policy"] = _HTML_CSP
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ApiError(404, _gone(dance_id, settings)) from None
        return FileResponse(path, media_type=_MEDIA_TYPES[fmt], headers=headers,
                            filename=f"{genre}-{dance_id[:8]}.{fmt}", stat_result=stat,
                            content_disposition_type="inline" if fmt in _INLINE
                            else "attachment")

    @app.get("/api/jobs/{job}", tags=["dances"],
             responses={400: _err("not a job id"), 404: _err("unknown job")})
    async def job_state(job: str) -> JSONResponse:
        """Progress of a generation sent with ``job``: ``{state, step, steps}``; ``id`` once
        done, ``error`` (and the HTTP ``status`` it had) once failed."""
        try:
            record = await run_in_threadpool(server.store.get_job, job)
        except InputError as exc:
            raise ApiError(400, str(exc)) from None
        if record is None:
            raise ApiError(404, f"no job {job!r}: it was never sent here, or its record expired "
                                f"(kept {settings.job_ttl_s:g} s)")
        keys = ("state", "step", "steps", "id", "error", "status")
        return JSONResponse({"step": 0, "steps": 0} | {k: record[k] for k in keys if k in record},
                            headers={"Cache-Control": "no-store"})

    # ---------------------------------------------------------------------------- genres
    @app.get("/api/genres", tags=["genres"])
    async def genres(prompt: str | None = None) -> JSONResponse:
        """The model's genres; with ``prompt``, also the genre it picks for that text and the
        probabilities (as a generation with that prompt would)."""
        from ..conditioning.genres import REGISTRY

        bundle = server.generator.bundle
        out: dict[str, Any] = {"dataset": bundle.dataset, "genres": [
            {"name": g.name, "id": g.id, "aliases": list(g.aliases)}
            for g in REGISTRY.genres(bundle.dataset) if g.name in bundle.genres]}
        if prompt is not None:
            if not prompt.strip():
                raise ApiError(400, "the prompt is empty: give a genre name or a description")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise ApiError(400, f"the prompt has {len(prompt)} characters; at most "
                                    f"{MAX_PROMPT_CHARS} are accepted")
            genre, probs = await run_in_threadpool(server.generator.choose_genre, prompt)
            out |= {"genre": genre, "genre_probs": probs}
        return JSONResponse(out)

    @app.get("/api/health", tags=["server"])
    async def health() -> JSONResponse:
        """Liveness and load: 200 while serving, 503 once shutting down (take it out of the
        load balancer)."""
        gen = server.generator
        stopping = server.work.stopping
        body = {"status": "stopping" if stopping else "ok", "version": __version__,
                "model": {"bundle": gen.bundle.path.name, "dataset": gen.bundle.dataset,
                          "genres": len(gen.bundle.genres),
                          "steps": gen.bundle.sampling.steps,
                          "provider": getattr(gen, "provider", None)},
                "work": server.work.stats(),
                "store": await run_in_threadpool(server.store.stats),
                "limits": settings.limits()}
        return JSONResponse(body, status_code=503 if stopping else 200,
                            headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return _web_file("index.html")

    @app.get("/assets/{name:path}", include_in_schema=False)
    async def asset(name: str) -> Response:
        return _web_file(f"assets/{name}")

    return app


async def _accept(request: Request, server: _Server, fields: _Fields,
                  upload: UploadFile) -> Future[dict[str, Any]]:
    """Admit, claim the job id, copy and validate the audio, and hand the generation to a
    worker. Everything taken is given back if any step fails."""
    settings = server.settings
    try:
        ticket = server.work.admit()
    except (Busy, ShuttingDown) as exc:
        raise ApiError(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
    folder: Path | None = None
    claimed = False
    try:
        if fields.job is not None:
            await run_in_threadpool(server.prune_jobs)
            claimed = await run_in_threadpool(server.store.create_job, fields.job, {
                "state": "queued", "step": 0, "steps": 0, "updated": time.time()})
            if not claimed:
                raise ApiError(409, f"job id {fields.job!r} is already in use; pick a fresh "
                                    "random one")
        dance_id = server.store.new_id()
        folder = server.store.new_stage(dance_id)
        audio_file = f"audio{_audio_suffix(upload.filename)}"
        await run_in_threadpool(_copy, upload.file, folder / audio_file)
        client_name = Path(upload.filename or "upload").name[:200]
        samples, rate = await run_in_threadpool(_decode, folder / audio_file, client_name,
                                                fields.start, fields.duration,
                                                settings.max_seconds)
        steps = fields.steps or int(server.generator.bundle.sampling.steps)
        if claimed:
            server._job_update(fields.job, state="queued", step=0, steps=steps)
        req = _Generation(dance_id, folder, audio_file, client_name, samples, rate, fields,
                          steps)
        future = server.work.submit(ticket, server.produce, req, on_skip=server.skip)
    except BaseException as exc:
        ticket.release()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        status, message = _status_of(exc)
        if claimed:
            server._job_update(fields.job, state="failed", step=0, steps=0, error=message,
                               status=status)
        if isinstance(exc, (AudioError, InputError)):
            raise ApiError(status, message) from None
        if isinstance(exc, (Busy, ShuttingDown)):  # the stop came while the upload was read
            raise ApiError(503, message, {"Retry-After": str(exc.retry_after)}) from None
        raise
    return future


def _web_file(name: str) -> Response:
    """A file of the built web page (``gcdance.web``), or a page saying how to build it."""
    try:
        from ..web import asset_path, assets_built
    except ImportError:
        return _not_built("this installation of gcdance has no web front end (gcdance.web)")
    try:
        path = asset_path(name)
    except InputError:
        return _error(404, f"no such asset: {name[:80]}")
    except GCDanceError as exc:  # WebAssetsMissingError: not built, or no such file
        if not assets_built():
            return _not_built(str(exc))
        return _error(404, f"no such asset: {name[:80]}")
    return FileResponse(path, headers={"Cache-Control": "no-cache",
                                       "X-Content-Type-Options": "nosniff"})


def _not_built(reason: str) -> HTMLResponse:
    text = ("<!doctype html><meta charset=utf-8><title>gcdance: page not built</title>"
            f"<h1>gcdance</h1><p>The web page is not available: {html.escape(reason)}.</p>"
            "<p>The HTTP API works without it: see <a href=/docs>/docs</a>.</p>")
    return HTMLResponse(text, status_code=503)
