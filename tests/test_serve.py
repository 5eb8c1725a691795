"""``gcdance serve``: the HTTP API against a real app and the default model (docs/serve.md).

Fast tests drive the app in-process (FastAPI's TestClient, a few direct ASGI calls); dances are
3-4 s of synthesized music at 2-5 steps. A gate around the real generator holds a generation at
its first step where a test needs "running" to last (busy, queue, disconnect, shutdown).
The slow tests start ``python -m gcdance.serve`` under uvicorn on a loopback port (20 requests
at once, a client that gives up, SIGINT) and drive the web page in Chromium.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                                      "'gcdance[serve]')")
pytest.importorskip("multipart", reason="python-multipart (serve extra) is not installed")
import httpx
from fastapi.testclient import TestClient

import gcdance
from gcdance.serve import ServeSettings, create_app
from gcdance.serve.store import DanceStore

REPO = Path(__file__).resolve().parents[1]
SR = 22050


# ----------------------------------------------------------------------------------- helpers


def song(seconds: float = 4.0, sr: int = SR, bpm: float = 120.0) -> np.ndarray:
    """A beat: decaying low 'kicks' on every beat over a quiet chord."""
    t = np.arange(int(seconds * sr)) / sr
    beat = 60.0 / bpm
    phase = np.mod(t, beat)
    kick = np.sin(2 * np.pi * 60 * phase) * np.exp(-phase * 18)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    return (0.6 * kick + 0.15 * chord).astype(np.float32)


def wav_bytes(seconds: float = 4.0, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, song(seconds, sr), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def post(client: Any, audio: bytes | None = None, name: str = "song.wav",
         **fields: Any) -> Any:
    data = {"prompt": "popping", "steps": "3", **{k: str(v) for k, v in fields.items()}}
    # Every field as a multipart part (a request without a file is multipart all the same).
    parts = [(k, (None, v)) for k, v in data.items() if v != "None"]
    if audio is not None:
        parts.append(("audio", (name, audio, "audio/wav")))
    return client.post("/api/dances", files=parts)


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "it") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def parse_bvh(text: str) -> tuple[list[str], int, np.ndarray]:
    """Joint names, frame count and the motion rows of a BVH file (a strict, minimal reader)."""
    head, motion = text.split("MOTION", 1)
    names = re.findall(r"^\s*(?:ROOT|JOINT)\s+(\S+)", head, flags=re.M)
    channels = sum(int(n) for n in re.findall(r"CHANNELS\s+(\d+)", head))
    frames = int(re.search(r"Frames:\s*(\d+)", motion).group(1))
    assert re.search(r"Frame Time:\s*([0-9.]+)", motion)
    rows = [line for line in motion.split("Frame Time:", 1)[1].splitlines()[1:] if line.strip()]
    data = np.array([[float(v) for v in row.split()] for row in rows])
    assert data.shape == (frames, channels), (data.shape, frames, channels)
    return names, frames, data


class Gated:
    """The real generator, held at its first step until :attr:`gate` opens (the server's own
    progress callback keeps being polled meanwhile, so a shutdown can cancel it)."""

    def __init__(self, generator: Any) -> None:
        self._gen = generator
        self.started = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gen, name)

    def generate(self, audio: Any, prompt: str, progress: Any = None, **kw: Any) -> Any:
        def held(step: int, steps: int) -> bool:
            if progress is not None and not progress(step, steps):
                return False
            if step == 1:
                self.started.set()
                while not self.gate.wait(0.02):
                    if progress is not None and not progress(step, steps):
                        return False
            return True

        return self._gen.generate(audio, prompt, progress=held, **kw)


def store_leftovers(root: Path) -> list[str]:
    """Anything in the store that is not a finished dance or job record."""
    bad = [str(p.relative_to(root)) for p in (root / "tmp").iterdir()]
    for p in root.rglob("*"):
        if ".tmp-" in p.name:
            bad.append(str(p.relative_to(root)))
    return bad


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def generator() -> Any:
    gen = gcdance.Generator()
    # First use compiles the feature code (seconds); pay it once for the module.
    gen.generate((song(2.0), SR), "hiphop", steps=1)
    return gen


@pytest.fixture
def make_client(tmp_path: Path, generator: Any) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(gen: Any = None, **settings: Any) -> TestClient:
        settings.setdefault("store", tmp_path / "store")
        app = create_app(ServeSettings(warmup=False, **settings), generator=gen or generator)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture(scope="module")
def wav4() -> bytes:
    return wav_bytes(4.0)


# ------------------------------------------------------------------------------- generation


def test_a_dance_in_every_format(client: TestClient, wav4: bytes, generator: Any,
                                 tmp_path: Path) -> None:
    r = post(client, wav4, seed=7, steps=4, job="job-every-format")
    assert r.status_code == 200, r.text
    body = r.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
    assert body["genre"] == "Popping" and body["genre_probs"]["Popping"] == pytest.approx(1.0)
    assert abs(sum(body["genre_probs"].values()) - 1.0) < 1e-6
    assert body["seconds"] == pytest.approx(4.0) and body["fps"] == 30
    assert body["seed"] == 7 and body["steps"] == 4
    assert body["files"] == {f: f"/api/dances/{body['id']}.{f}"
                             for f in ("glb", "bvh", "npz", "mp4", "html")}

    # The stored dance is exactly what the library makes from the same file and seed.
    (tmp_path / "song.wav").write_bytes(wav4)
    expected = generator.generate(str(tmp_path / "song.wav"), "popping", seed=7, steps=4)
    npz = client.get(body["files"]["npz"])
    assert npz.status_code == 200
    assert npz.headers["content-type"] == "application/octet-stream"
    assert "attachment" in npz.headers["content-disposition"]
    (tmp_path / "got.npz").write_bytes(npz.content)
    dance = gcdance.Dance.load(tmp_path / "got.npz")
    assert dance.motion.shape == (120, 319)
    np.testing.assert_array_equal(dance.motion, expected.motion)
    assert dance.genre == "Popping" and dance.seed == 7 and dance.prompt == "popping"
    assert dance.audio.path == "song.wav" and dance.audio.sample_rate == SR

    names, frames, _ = parse_bvh(client.get(body["files"]["bvh"]).text)
    assert frames == 120 and len(names) == 52 and names[0] == "pelvis"

    glb = client.get(body["files"]["glb"])
    assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
    assert glb.content[:4] == b"glTF" and int.from_bytes(glb.content[8:12], "little") == \
        len(glb.content)

    mp4 = client.get(body["files"]["mp4"])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    assert mp4.content[4:8] == b"ftyp" and len(mp4.content) > 10_000
    part = client.get(body["files"]["mp4"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == mp4.content[:100]  # seekable video

    page = client.get(body["files"]["html"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "sandbox" in page.headers["content-security-policy"]
    assert page.text.lstrip().lower().startswith("<!doctype html")

    # The files are written once: a second request serves the same bytes.
    assert client.get(body["files"]["mp4"]).content == mp4.content
    head = client.head(body["files"]["bvh"])
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0
    # The dance's JSON is there for clients that lost the POST's answer.
    again = client.get(f"/api/dances/{body['id']}").json()
    assert again == body
    job = client.get("/api/jobs/job-every-format").json()
    assert job == {"state": "done", "id": body["id"], "step": 4, "steps": 4}
    assert store_leftovers(tmp_path / "store") == []


def test_start_and_duration_pick_the_part_danced(client: TestClient, tmp_path: Path,
                                                 generator: Any) -> None:
    audio = wav_bytes(5.0)
    r = post(client, audio, start=1.5, duration=2.5, steps=2, prompt="jazz")
    assert r.status_code == 200, r.text
    assert r.json()["seconds"] == pytest.approx(2.5) and r.json()["genre"] == "Jazz"
    (tmp_path / "five.wav").write_bytes(audio)
    expected = generator.generate(str(tmp_path / "five.wav"), "jazz", steps=2, start=1.5,
                                  duration=2.5)
    (tmp_path / "part.npz").write_bytes(client.get(r.json()["files"]["npz"]).content)
    dance = gcdance.Dance.load(tmp_path / "part.npz")
    np.testing.assert_array_equal(dance.motion, expected.motion)
    assert dance.audio.start == 1.5


def test_genres_health_and_docs(client: TestClient) -> None:
    listed = client.get("/api/genres").json()
    assert listed["dataset"] == "finedance"
    assert [g["name"] for g in listed["genres"]][:3] == ["Breaking", "Popping", "Locking"]
    assert len(listed["genres"]) == 16 and "genre" not in listed
    korean = next(g for g in listed["genres"] if g["name"] == "Korean")
    assert korean["id"] == 13 and "k-pop" in korean["aliases"]

    exact = client.get("/api/genres", params={"prompt": "k-pop"}).json()
    assert exact["genre"] == "Korean" and exact["genre_probs"]["Korean"] == 1.0
    free = client.get("/api/genres", params={"prompt": "head spins and freezes on the floor"})
    probs = free.json()["genre_probs"]
    assert free.json()["genre"] == max(probs, key=probs.get)
    assert abs(sum(probs.values()) - 1.0) < 1e-5
    assert client.get("/api/genres", params={"prompt": "  "}).status_code == 400
    assert client.get("/api/genres", params={"prompt": "x" * 1001}).status_code == 400

    health = client.get("/api/health")
    assert health.status_code == 200
    h = health.json()
    assert h["status"] == "ok" and h["version"] == gcdance.__version__
    assert h["model"]["dataset"] == "finedance" and h["model"]["genres"] == 16
    assert h["work"]["running"] == 0 and h["work"]["capacity"] == 5
    assert h["limits"]["max_upload_bytes"] == 64 * 2**20 and h["limits"]["max_seconds"] == 300
    assert h["store"]["dances"] == 0

    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    form = spec["paths"]["/api/dances"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(form["schema"]["properties"]) == {"audio", "prompt", "seed", "steps", "start",
                                                 "duration", "job"}
    assert "/api/jobs/{job}" in spec["paths"] and "/api/health" in spec["paths"]
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and "/docs" in missing.json()["error"]


# ------------------------------------------------------------------------------ bad requests


def _not_audio() -> bytes:
    return b"RIFF\x00\x00\x00\x00WAVEthis is no audio at all" * 40


@pytest.mark.parametrize(("case", "status", "words"), [
    ("no audio", 400, "no audio"),
    ("audio as text", 400, "file upload"),
    ("empty file", 422, "empty"),
    ("not audio", 422, "cannot decode"),
    ("too short", 422, "shorter than"),
    ("no prompt", 400, "no prompt"),
    ("long prompt", 400, "at most 1000"),
    ("seed letters", 400, "seed must be an integer"),
    ("seed negative", 400, "seed must be an integer"),
    ("seed huge", 400, "seed must be an integer"),
    ("steps zero", 400, "steps must be an integer from 1 to 100"),
    ("steps too many", 400, "steps must be an integer from 1 to 100"),
    ("start text", 400, "start must be a number"),
    ("start negative", 400, "start must be a number"),
    ("duration zero", 400, "duration must be a number"),
    ("duration nan", 400, "duration must be a number"),
    ("start past end", 422, "no audio samples"),
    ("bad job", 400, "job must be"),
    ("unknown field", 400, "unknown form field"),
    ("twice", 400, "given 2 times"),
])
def test_bad_requests_are_refused_before_any_work(client: TestClient, wav4: bytes,
                                                  tmp_path: Path, case: str, status: int,
                                                  words: str) -> None:
    requests: dict[str, Callable[[], Any]] = {
        "no audio": lambda: post(client, None),
        "audio as text": lambda: client.post("/api/dances", files={
            "audio": (None, "song.wav"), "prompt": (None, "jazz")}),
        "empty file": lambda: post(client, b""),
        "not audio": lambda: post(client, _not_audio(), name="song.mp3"),
        "too short": lambda: post(client, wav_bytes(0.5)),
        "no prompt": lambda: post(client, wav4, prompt=None),
        "long prompt": lambda: post(client, wav4, prompt="x" * 1001),
        "seed letters": lambda: post(client, wav4, seed="abc"),
        "seed negative": lambda: post(client, wav4, seed=-1),
        "seed huge": lambda: post(client, wav4, seed=2**64),
        "steps zero": lambda: post(client, wav4, steps=0),
        "steps too many": lambda: post(client, wav4, steps=101),
        "start text": lambda: post(client, wav4, start="soon"),
        "start negative": lambda: post(client, wav4, start=-2),
        "duration zero": lambda: post(client, wav4, duration=0),
        "duration nan": lambda: post(client, wav4, duration="nan"),
        "start past end": lambda: post(client, wav4, start=9),
        "bad job": lambda: post(client, wav4, job="../../x"),
        "unknown field": lambda: post(client, wav4, guidance=3),
        "twice": lambda: client.post("/api/dances", files=[
            ("audio", ("a.wav", wav4, "audio/wav")), ("prompt", (None, "jazz")),
            ("prompt", (None, "pop"))]),
    }
    r = requests[case]()
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert words in message, message
    assert "/tmp" not in message and "stage-" not in message  # names the client's file only
    store = tmp_path / "store"
    assert store_leftovers(store) == [] and not any((store / "dances").iterdir())


def test_not_multipart_is_415(client: TestClient) -> None:
    r = client.post("/api/dances", json={"prompt": "jazz"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]


def test_upload_and_length_limits(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    client = make_client(max_upload_mb=0.1, max_seconds=3.0)
    big = wav_bytes(4.0)  # 176 kB > 0.1 MiB
    assert len(big) > 0.1 * 2**20
    r = post(client, big)
    assert r.status_code == 413 and "0.1 MiB" in r.json()["error"]

    # A body without a declared length (chunked) is cut off while it is read.
    request = httpx.Request("POST", "http://x/api/dances", files={"audio": ("a.wav", big)},
                            data={"prompt": "jazz"})
    body = request.read()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    headers = {"content-type": request.headers["content-type"]}
    r = client.post("/api/dances", content=chunks(), headers=headers)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    small = wav_bytes(3.5, sr=8000)  # 56 kB: small enough, but 3.5 s > 3 s
    r = post(client, small)
    assert r.status_code == 422 and "limit of 3 s" in r.json()["error"]
    r = post(client, small, duration=2.0, steps=2)  # the part danced is within the limit
    assert r.status_code == 200 and r.json()["seconds"] == pytest.approx(2.0)
    assert store_leftovers(tmp_path / "store") == []


def test_ids_cannot_name_other_files(client: TestClient, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "meta.json").write_text(json.dumps({"id": "x", "audio": "a.wav", "start": 0}))
    (outside / "dance.npz").write_bytes(b"PRIVATE-BYTES")
    planted = "ab" * 16
    os.symlink(outside, tmp_path / "store" / "dances" / planted)

    for path, status in [
        ("/api/dances/..%2F..%2Fetc%2Fpasswd", 400),
        ("/api/dances/..%2Fsecret%2Fdance.npz", 400),
        ("/api/dances/%2Fetc%2Fpasswd", 400),
        ("/api/dances/" + "A" * 32 + ".npz", 400),  # ids are lowercase hex
        ("/api/dances/" + "0" * 31 + ".npz", 400),
        (f"/api/dances/{'0' * 32}.exe", 400),
        (f"/api/dances/{'0' * 32}.npz.npz", 400),
        (f"/api/dances/{'0' * 32}.npz", 404),  # a well-formed id that was never made
        (f"/api/dances/{planted}.npz", 400),  # a link out of the store is refused
        (f"/api/dances/{planted}", 400),
        ("/api/jobs/..%2F..%2Fx", 404),
        ("/api/jobs/short", 400),
        ("/api/jobs/unknown-job-id", 404),
        ("/assets/..%2F..%2F__init__.py", 404),
    ]:
        r = client.get(path)
        assert r.status_code == status, (path, r.status_code, r.text)
        assert "error" in r.json() and b"PRIVATE-BYTES" not in r.content
    unknown = client.get(f"/api/dances/{'0' * 32}.npz").json()["error"]
    assert "evicted" in unknown and "500" in unknown


# ------------------------------------------------------------------------------ concurrency


def test_busy_answers_503_with_retry_after(make_client: Callable[..., TestClient],
                                           generator: Any, wav4: bytes) -> None:
    gated = Gated(generator)
    client = make_client(gen=gated, workers=1, queue=1)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, client, wav4, job="job-first-one")
        wait_for(gated.started.is_set, what="the first generation to start")
        wait_for(lambda: client.get("/api/jobs/job-first-one").json() == {
            "state": "running", "step": 1, "steps": 3}, what="progress at step 1")
        second = pool.submit(post, client, wav4, job="job-second-one", seed=1)
        wait_for(lambda: client.get("/api/jobs/job-second-one").status_code == 200,
                 what="the second request to queue")
        assert client.get("/api/jobs/job-second-one").json()["state"] == "queued"
        work = client.get("/api/health").json()["work"]
        assert work["running"] == 1 and work["waiting"] == 1

        third = post(client, wav4, job="job-third-one")
        assert third.status_code == 503
        assert "busy" in third.json()["error"]
        assert int(third.headers["retry-after"]) >= 1
        assert client.get("/api/jobs/job-third-one").status_code == 404  # never accepted

        # A render waits for a worker too: busy now.
        gated.gate.set()
        a, b = first.result(60), second.result(60)
    assert a.status_code == 200 and b.status_code == 200, (a.text, b.text)
    assert a.json()["id"] != b.json()["id"]
    retried = post(client, wav4, job="job-third-one")  # the id was never taken
    assert retried.status_code == 200, retried.text


def test_two_workers_generate_at_once_exactly(make_client: Callable[..., TestClient],
                                             generator: Any, tmp_path: Path) -> None:
    client = make_client(workers=2, queue=0)
    audio = wav_bytes(3.0)
    (tmp_path / "three.wav").write_bytes(audio)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda seed: post(client, audio, seed=seed, prompt="breaking"),
                                (11, 12)))
    for seed, r in zip((11, 12), answers, strict=True):
        assert r.status_code == 200, r.text
        (tmp_path / f"{seed}.npz").write_bytes(client.get(r.json()["files"]["npz"]).content)
        alone = generator.generate(str(tmp_path / "three.wav"), "breaking", seed=seed, steps=3)
        np.testing.assert_array_equal(gcdance.Dance.load(tmp_path / f"{seed}.npz").motion,
                                      alone.motion)


def test_a_job_id_is_used_once(client: TestClient, wav4: bytes) -> None:
    assert post(client, wav4, job="reused-job-id").status_code == 200
    again = post(client, wav4, job="reused-job-id")
    assert again.status_code == 409 and "already in use" in again.json()["error"]
    failed = post(client, b"", job="failed-job-id")
    assert failed.status_code == 422
    record = client.get("/api/jobs/failed-job-id")
    # An error found while reading the form comes before the job is recorded.
    assert record.status_code == 404
    bad = post(client, _not_audio(), job="undecodable-job")
    assert bad.status_code == 422
    assert client.get("/api/jobs/undecodable-job").json() == {
        "state": "failed", "step": 0, "steps": 0, "status": 422,
        "error": bad.json()["error"]}


def test_a_client_that_disconnects_loses_nothing(make_client: Callable[..., TestClient],
                                                 generator: Any, wav4: bytes) -> None:
    gated = Gated(generator)
    client = make_client(gen=gated)
    server = client.app.state.gcdance
    request = httpx.Request("POST", "http://testserver/api/dances",
                            files={"audio": ("song.wav", wav4, "audio/wav")},
                            data={"prompt": "locking", "steps": "3", "job": "gone-client-1"})
    body = request.read()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/dances",
             "raw_path": b"/api/dances", "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}

    async def drive() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        task = asyncio.ensure_future(client.app(scope, receive, send))
        while not gated.started.is_set():
            await asyncio.sleep(0.02)
        task.cancel()  # what the server does with a request whose client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        gated.gate.set()
        while (server.store.get_job("gone-client-1") or {}).get("state") != "done":
            await asyncio.sleep(0.05)
        return sent

    sent = asyncio.run(asyncio.wait_for(drive(), 120))
    assert not any(m["type"] == "http.response.start" for m in sent)
    record = client.get("/api/jobs/gone-client-1").json()
    assert record["state"] == "done"
    dance = client.get(f"/api/dances/{record['id']}").json()
    assert dance["genre"] == "Locking" and dance["job"] == "gone-client-1"
    assert client.get(dance["files"]["npz"]).status_code == 200


def test_shutdown_cancels_cleanly(make_client: Callable[..., TestClient], generator: Any,
                                  wav4: bytes, tmp_path: Path) -> None:
    gated = Gated(generator)
    client = make_client(gen=gated, workers=1, queue=2)
    server = client.app.state.gcdance
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, client, wav4, job="cut-short-1")
        wait_for(gated.started.is_set, what="the generation to start")
        queued = pool.submit(post, client, wav4, job="never-started")
        wait_for(lambda: (server.store.get_job("never-started") or {}).get("state") == "queued",
                 what="the second request to queue")
        stopper = threading.Thread(target=lambda: (server.begin_shutdown(), server.stop()))
        stopper.start()
        a, b = running.result(60), queued.result(60)
        stopper.join(60)
    for r in (a, b):
        assert r.status_code == 503 and "shut" in r.json()["error"], r.text
        assert int(r.headers["retry-after"]) >= 1
    assert "finished" in client.get("/api/jobs/cut-short-1").json()["error"]
    assert client.get("/api/jobs/never-started").json()["state"] == "failed"
    late = post(client, wav4)
    assert late.status_code == 503 and "shutting down" in late.json()["error"]
    assert client.get("/api/health").status_code == 503
    store = tmp_path / "store"
    assert store_leftovers(store) == [] and not any((store / "dances").iterdir())


def test_a_stop_while_the_upload_is_read_is_a_503(make_client: Callable[..., TestClient],
                                                   wav4: bytes, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Admitted, then the server stops before the job reaches the queue (it was decoding the
    audio): the client gets a 503 with Retry-After, not a server error, and nothing is left."""
    import gcdance.serve.app as app_module

    client = make_client(workers=1, queue=2)
    server = client.app.state.gcdance
    decode = app_module._decode

    def decode_after_the_stop(*args: Any) -> Any:
        server.begin_shutdown()
        server.stop()
        return decode(*args)

    monkeypatch.setattr(app_module, "_decode", decode_after_the_stop)
    r = post(client, wav4, job="caught-mid-upload")
    assert r.status_code == 503 and "shutting down" in r.json()["error"], r.text
    assert int(r.headers["retry-after"]) >= 1
    assert client.get("/api/jobs/caught-mid-upload").json()["state"] == "failed"
    store = tmp_path / "store"
    assert store_leftovers(store) == [] and not any((store / "dances").iterdir())


# ----------------------------------------------------------------------------------- store


def test_store_evicts_the_oldest(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_dances=2)
    audio = wav_bytes(2.0)
    ids = []
    for prompt in ("jazz", "popping", "locking"):
        r = post(client, audio, prompt=prompt, steps=2)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    assert client.get(f"/api/dances/{ids[0]}.npz").status_code == 404
    assert [client.get(f"/api/dances/{i}.npz").status_code for i in ids[1:]] == [200, 200]
    assert client.get("/api/health").json()["store"]["dances"] == 2


def _fake_dance(store: DanceStore, size: int, mtime: float) -> str:
    dance_id = store.new_id()
    work = store.new_stage(dance_id)
    (work / "dance.npz").write_bytes(b"x" * size)
    (work / "meta.json").write_text("{}")
    store.commit(work, dance_id)
    os.utime(store.folder(dance_id) / "dance.npz", (mtime, mtime))
    return dance_id


def test_store_bounds_ids_and_leftovers(tmp_path: Path) -> None:
    store = DanceStore(tmp_path / "s", max_dances=3, max_bytes=10_000)
    now = time.time()
    ids = [_fake_dance(store, 1000, now - 100 + i) for i in range(5)]
    assert store.evict() == ids[:2]  # count bound: the two oldest
    assert [e.id for e in store.entries()] == ids[2:]
    big = _fake_dance(store, 8000, now)
    assert store.evict(keep={big}) == ids[2:4]  # byte bound, the newest kept
    assert [e.id for e in store.entries()] == [ids[4], big]
    huge = _fake_dance(store, 20_000, now + 1)
    assert store.evict(keep={huge}) == [ids[4], big]  # alone over the bound, but kept
    assert store.stats()["dances"] == 1

    for bad in ("../x", "0" * 31, "0" * 33, "G" * 32, "0" * 32 + "/", "", None):
        with pytest.raises(gcdance.InputError):
            store.folder(bad)  # type: ignore[arg-type]
    with pytest.raises(gcdance.InputError):
        store.file(huge, "exe")

    # Leftovers of a killed process: its build folder and a half-written file.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from gcdance.serve import store as store_mod

    stale = store.tmp / f"stage-{'1' * 32}-{store_mod._HOST}-{dead.pid}-abcd1234"
    stale.mkdir()
    (stale / "audio.wav").write_bytes(b"x")
    mine = store.new_stage("2" * 32)  # this live process's: kept
    half = store.folder(huge) / f".dance.tmp-{dead.pid}-00ff00ff.mp4"
    half.write_bytes(b"partial")
    os.utime(half, (now - 3600, now - 3600))
    fresh = store.folder(huge) / f".dance.tmp-{os.getpid()}-11ff00ff.bvh"
    fresh.write_bytes(b"being written")
    assert store.sweep() == 2
    assert not stale.exists() and not half.exists() and mine.exists() and fresh.exists()

    assert store.create_job("job-00000001", {"state": "queued"})
    assert not store.create_job("job-00000001", {"state": "queued"})
    assert store.get_job("job-00000001") == {"state": "queued"}
    old = store.job_file("job-00000001")
    os.utime(old, (now - 7200, now - 7200))
    assert store.create_job("job-00000002", {"state": "queued"})
    assert store.prune_jobs() == 1 and store.get_job("job-00000002") is not None


def test_settings_are_checked() -> None:
    for bad in ({"workers": 0}, {"queue": -1}, {"max_upload_mb": 0}, {"max_seconds": 0.5},
                {"max_steps": 0}, {"max_store_mb": float("inf")}, {"threads": 0},
                {"workers": True}, {"shutdown_grace_s": -1}):
        with pytest.raises(gcdance.InputError):
            ServeSettings(**bad)
    s = ServeSettings(workers=2, queue=3)
    assert s.capacity == 5 and s.engine_threads() >= 1


# -------------------------------------------------------------------------------- the page


def test_page_and_assets(client: TestClient, monkeypatch: pytest.MonkeyPatch,
                         tmp_path: Path) -> None:
    from gcdance import web

    if web.assets_built():
        page = client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        for asset in re.findall(r'(?:src|href)="/?(assets/[^"]+)"', page.text):
            got = client.get(f"/{asset}")
            assert got.status_code == 200 and got.content, asset
    assert client.get("/assets/nothing.js").status_code == 404
    monkeypatch.setattr(web, "DIST", tmp_path / "no-dist")
    missing = client.get("/")
    assert missing.status_code == 503
    assert "build_web.py" in missing.text and "/docs" in missing.text
    assert client.get("/assets/app.js").status_code == 503


def test_cli_names_the_missing_extra(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    from gcdance import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert cli.main(["serve", "--port", "8123"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "uvicorn" in err and "pip install 'gcdance[serve]'" in err


# -------------------------------------------------------------------- a real server (slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = _free_port()
    store = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcdance.serve", "--port", str(port), "--store", str(store),
         "--workers", "1", "--queue", "4"], cwd=REPO, env=env, stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "server.log").read_text())
        try:
            return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=120, what="the server to start")
        yield url, proc, store
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        print((tmp_path / "server.log").read_text()[-3000:])


@pytest.mark.slow
def test_load_disconnect_and_sigterm(live_server: tuple[str, subprocess.Popen[bytes], Path],
                                    tmp_path: Path) -> None:
    url, proc, store = live_server
    audio = wav_bytes(4.0)
    with httpx.Client(base_url=url, timeout=120) as http:
        warm = http.post("/api/dances", files={"audio": ("s.wav", audio)},
                         data={"prompt": "popping", "steps": "10"})
        assert warm.status_code == 200, warm.text
    rss_before = _rss_mb(proc.pid)

    def one(i: int) -> tuple[int, dict[str, Any], dict[str, str], float]:
        t0 = time.perf_counter()
        with httpx.Client(base_url=url, timeout=180) as http:
            r = http.post("/api/dances", files={"audio": (f"s{i}.wav", audio)},
                          data={"prompt": ["popping", "jazz", "breaking", "k-pop"][i % 4],
                                "steps": "10", "seed": str(i)})
            return r.status_code, r.json(), dict(r.headers), time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    wall = time.perf_counter() - t0
    rss_after = _rss_mb(proc.pid)
    codes = [r[0] for r in results]
    assert set(codes) <= {200, 503}, codes
    ok = [r for r in results if r[0] == 200]
    busy = [r for r in results if r[0] == 503]
    assert len(ok) >= 5  # at least the workers and the queue's worth
    for _, body, headers, _ in busy:
        assert "busy" in body["error"] and 1 <= int(headers["retry-after"]) <= 600
    grew = rss_after - rss_before
    print(f"load: 20 at once -> {len(ok)} x 200, {len(busy)} x 503 in {wall:.1f} s; "
          f"latency of 200s {min(r[3] for r in ok):.1f}-{max(r[3] for r in ok):.1f} s; "
          f"RSS {rss_before:.0f} -> {rss_after:.0f} MiB")
    assert grew < 300, f"server RSS grew by {grew:.0f} MiB under load"

    # Those told to retry do, after Retry-After (capped to keep the test short): none is lost.
    def until_served(i: int) -> tuple[int, int]:
        tries = 0
        while True:
            tries += 1
            code, body, headers, _ = one(i)
            if code == 200:
                results[i] = (code, body, headers, 0.0)
                return i, tries
            assert code == 503, body
            time.sleep(min(int(headers["retry-after"]), 4) + 0.1 * (i % 5))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        tries = dict(pool.map(until_served, [i for i, r in enumerate(results) if r[0] == 503]))
    print(f"retries: {len(tries)} clients served after {sum(tries.values())} more requests in "
          f"{time.perf_counter() - t0:.1f} s; RSS {_rss_mb(proc.pid):.0f} MiB")
    assert all(r[0] == 200 for r in results)
    assert len({r[1]["id"] for r in results}) == 20
    with httpx.Client(base_url=url, timeout=60) as http:
        for _, body, _, _ in results:
            npz = http.get(body["files"]["npz"])
            assert npz.status_code == 200
            path = tmp_path / f"{body['id']}.npz"
            path.write_bytes(npz.content)
            assert gcdance.Dance.load(path).motion.shape == (120, 319)
    assert _rss_mb(proc.pid) - rss_before < 300

    # A client that gives up mid-generation: the dance is still made and found by its job id.
    long_audio = wav_bytes(8.0)
    with httpx.Client(base_url=url, timeout=httpx.Timeout(60, read=0.5)) as http, \
            pytest.raises(httpx.ReadTimeout):
        http.post("/api/dances", files={"audio": ("long.wav", long_audio)},
                  data={"prompt": "urban", "steps": "40", "job": "impatient-client"})
    with httpx.Client(base_url=url, timeout=30) as http:
        record = wait_for(lambda: (lambda j: j if j.get("state") == "done" else None)(
            http.get("/api/jobs/impatient-client").json()), timeout=120,
            what="the abandoned generation to finish")
        dance = http.get(f"/api/dances/{record['id']}").json()
        assert dance["genre"] == "Urban" and dance["seconds"] == pytest.approx(8.0)

        # SIGTERM (what service managers send) while a generation runs: it finishes (within
        # the grace time), then the server exits and the store holds only finished dances.
        pool = ThreadPoolExecutor(1)
        pending = pool.submit(lambda: http.post(
            "/api/dances", files={"audio": ("last.wav", long_audio)},
            data={"prompt": "jazz", "steps": "40", "job": "during-shutdown"}))
        wait_for(lambda: (http.get("/api/jobs/during-shutdown").json().get("state")
                          == "running"), what="the last generation to start")
        proc.send_signal(signal.SIGTERM)
        refused = wait_for(lambda: (lambda r: r if r.status_code == 503 else None)(
            http.get("/api/health")), timeout=10, what="health to say 'stopping'")
        assert refused.json()["status"] == "stopping"
        last = pending.result(120)
        pool.shutdown()
    assert last.status_code == 200, last.text
    assert proc.wait(60) in (0, -signal.SIGTERM)
    assert store_leftovers(store) == []
    dances = list((store / "dances").iterdir())
    assert len(dances) == 20 + 3
    assert all((d / "dance.npz").is_file() and (d / "meta.json").is_file() for d in dances)


# ------------------------------------------------------------------------- the page (slow)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOT = REPO / "docs" / "web_app.png"


def _canvas(page: Any) -> np.ndarray:
    """The player's canvas pixels (320 wide), read right after it draws a frame (a WebGL
    canvas keeps its picture only until it is composited)."""
    rgba = page.evaluate("""() => new Promise((resolve) => {
        const p = window.gcdance.player;
        p.requestRender();
        requestAnimationFrame(() => {
            const src = p.renderer.domElement, c = document.createElement('canvas');
            c.width = 320;
            c.height = Math.round(320 * src.height / src.width);
            const g = c.getContext('2d');
            g.drawImage(src, 0, 0, c.width, c.height);
            resolve({w: c.width, h: c.height,
                     data: Array.from(g.getImageData(0, 0, c.width, c.height).data)});
        });
    })""")
    return np.asarray(rgba["data"], np.int16).reshape(rgba["h"], rgba["w"], 4)[..., :3]


@pytest.mark.slow
def test_the_page_makes_and_plays_a_dance(live_server: tuple[str, subprocess.Popen[bytes], Path],
                                          tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the browser test needs Playwright: pip install "
                                          "playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("the browser test needs Chromium: apt-get install -y chromium")
    from gcdance import web

    if not web.assets_built():
        pytest.skip("the web assets are not built: python tools/build_web.py")
    music = pytest.importorskip("immich_memories_music",
                                reason="needs real music: pip install immich-memories-music")
    track = Path(music.tracks_dir()) / "energetic" / "energetic_electronic_2.opus"
    url, _, _ = live_server
    expected = httpx.get(f"{url}/api/genres",
                         params={"prompt": "robotic waves with sharp hits"}).json()["genre"]

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 760},
                                      accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))

        def failed(request: Any) -> None:
            # The page probes the chosen song's length and then drops the probe: an aborted
            # local blob read is by design, not a failure.
            if not (request.url.startswith("blob:") and "ERR_ABORTED" in str(request.failure)):
                errors.append(f"request failed: {request.url} ({request.failure})")

        page.on("requestfailed", failed)
        try:
            page.goto(url)
            page.wait_for_selector("#genre-chips .chip", timeout=30_000)
            assert page.locator("#genre-chips .chip").count() == 16

            page.set_input_files("#song", str(track))
            # The genre shows as the prompt is typed (a request per pause in the typing).
            page.locator("#prompt").press_sequentially("robotic waves with sharp hits",
                                                       delay=20)
            page.wait_for_function(
                "() => document.querySelector('#genre-preview strong')?.textContent === "
                f"{json.dumps(expected)}", timeout=30_000)
            page.click("details.more summary")
            page.fill("#start", "20")
            page.fill("#duration", "6")
            page.fill("#steps", "20")
            page.click("#generate")
            page.wait_for_function("() => ['done', 'error'].includes(window.gcdance.state)",
                                   timeout=180_000)
            assert page.evaluate("window.gcdance.state") == "done", \
                page.locator("#error").text_content()
            result = page.evaluate("window.gcdance.result")
            assert result["genre"] == expected and result["seconds"] == pytest.approx(6.0)

            # The picture follows the dance: two moments, two poses.
            page.wait_for_function("() => window.gcdance.player.renderedFrames > 0")
            page.evaluate("window.gcdance.player.pause(); window.gcdance.player.seek(1.0)")
            early = _canvas(page)
            page.evaluate("window.gcdance.player.seek(3.5)")
            late = _canvas(page)
            assert early.std() > 5  # a figure on a floor, not a blank canvas
            assert float((np.abs(early - late).max(axis=2) > 24).mean()) > 0.002
            # It plays: the music, the clock and the drawn frames advance together.
            page.evaluate("window.gcdance.player.seek(0)")
            page.click(".gcd-play")
            now = ("() => { const p = window.gcdance.player; return [p.time, "
                   "p.audioElement.currentTime, p.renderedFrames, p.playing]; }")
            page.wait_for_function(
                "() => window.gcdance.player.audioElement.currentTime > 20.2", timeout=30_000)
            t1, audio1, frames1, playing = page.evaluate(now)
            page.wait_for_timeout(1000)
            t2, audio2, frames2, _ = page.evaluate(now)
            assert playing and 0 < t1 < t2 < 6 and audio2 - audio1 > 0.5
            assert abs((audio2 - 20) - t2) < 0.3  # the dance is on the music's clock
            assert frames2 > frames1

            # Download links give the files.
            links = page.locator("#downloads a[data-format]")
            formats = [links.nth(i).get_attribute("data-format") for i in range(links.count())]
            assert sorted(formats) == ["bvh", "glb", "html", "mp4", "npz"]
            for fmt in formats:
                with page.expect_download(timeout=120_000) as download:
                    page.click(f"#downloads a[data-format={fmt}]")
                saved = tmp_path / f"download.{fmt}"
                download.value.save_as(saved)
                head = saved.read_bytes()[:16]
                assert saved.stat().st_size > 1000, fmt
                if fmt == "npz":
                    assert gcdance.Dance.load(saved).motion.shape == (180, 319)
                elif fmt == "glb":
                    assert head[:4] == b"glTF"
                elif fmt == "mp4":
                    assert head[4:8] == b"ftyp"
                elif fmt == "bvh":
                    assert parse_bvh(saved.read_text())[1] == 180
                else:
                    assert head.lower().startswith(b"<!doctype html")

            # The README's picture: the whole page, mid-dance, with the result showing.
            page.mouse.move(1, 1)
            page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0); "
                          "window.gcdance.player.seek(2.0); window.gcdance.player.play()")
            page.wait_for_timeout(400)
            shot = tmp_path / "web_app.png"
            page.screenshot(path=str(shot))
            assert errors == [], errors

            # The dance's own HTML player works when opened from the server, in the opaque
            # origin its sandbox header gives it.
            player = context.new_page()
            player.on("console", lambda m: m.type == "error" and errors.append(m.text))
            player.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            response = player.goto(url + result["files"]["html"])
            assert "sandbox" in response.headers["content-security-policy"]
            player.wait_for_function("() => window.gcdance && (window.gcdance.ready || "
                                     "window.gcdance.error)", timeout=60_000)
            assert player.evaluate("window.gcdance.error || null") is None
            assert player.evaluate("window.origin") == "null"  # no access to the server's
            player.evaluate("window.gcdance.player.play()")
            player.wait_for_function("() => window.gcdance.player.time > 0.3", timeout=30_000)
            assert errors == [], errors
        finally:
            context.close()
            browser.close()
    from PIL import Image

    with Image.open(shot) as img:
        small = img.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        target = SCREENSHOT if (os.environ.get("GCDANCE_WRITE_SCREENSHOTS")
                                or not SCREENSHOT.exists()) else tmp_path / "small.png"
        small.save(target, optimize=True)
    assert target.stat().st_size < 400_000
