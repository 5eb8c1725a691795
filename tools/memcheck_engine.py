"""Run the native engine's code paths under valgrind and fail on errors in gcdance's own code.

    python tools/memcheck_engine.py            # needs valgrind and an installed gcdance
    GCDANCE_MEMCHECK_LOG=vg.log python tools/memcheck_engine.py   # keep valgrind's log

It writes a small model's four graphs (the engine's one graph form): the condition and denoiser
graphs of export.toy_graphs (no torch; the denoiser fails inside ONNX Runtime for a timestep past
its 1000-row table, on demand), the sampler step with and without root anchoring and the upload
graph (export.sampler_graph, imported from this checkout). Then, inside valgrind (memcheck), it
runs gcdance._engine: Models that load, and Models whose graphs or settings are refused at load
time (wrong names and widths, a missing or corrupt file, a missing schedule column, bad
providers and thread counts); Generators over one and several windows and back, with and
without root anchoring, seeded and injected noise, eta = 0, one and two steps, inpainting, a
cancellation, an exception from the progress callback, an ONNX Runtime failure inside the loop,
rejected requests, two threads sharing a Model, and Models outliving their Generators and the
other way round. Leak checking is on: a definite leak whose allocation passed through gcdance's
code counts as ours.

Python and ONNX Runtime produce reports of their own (uninitialised reads in the interpreter's
GC, an overlapping memcpy in ORT's environment set-up); an error counts as ours when the first
stack frame outside valgrind's preload library is in gcdance's module. Exit 0: none of ours.

To check another build of the engine (a planted bug, a sanitizer-free debug build), put a copy
of python/gcdance with that _engine*.so first on PYTHONPATH: the workload imports whatever
``gcdance`` Python finds. The tool was proven that way on a build with two planted bugs, a
one-row heap overflow in Generator::Upload and a buffer lost on every generation: it reported
the ``Invalid write`` in gcdance::Generator::Upload and the ``definitely lost`` blocks allocated
in gcdance::Generator::Generate (7 reports of ours) and exited 1; the same workload on the
unplanted build reports none of ours.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKLOAD = r'''
import sys
import threading
from pathlib import Path

sys.path.insert(0, sys.argv[2])  # the checkout: export.sampler_graph, export.toy_graphs
import numpy as np

import gcdance
from export.sampler_graph import build_sampler_graph, build_upload_graph
from export.toy_graphs import write_toy_graphs
from gcdance.engine import engine
from gcdance.sampling.schedule import TABLE_KEYS, ddim_schedule

D, M, T, C, L, HOP = 23, 5, 4, 8, 10, 6
ANCHORS, ZERO = [2, 0], [0.25, -0.5]
folder = Path(sys.argv[1])
rng = np.random.default_rng(0)
# x0 = tanh(x_t + cond_cache Wd + E[t]): a timestep >= 1000 fails (Gather out of bounds).
condition, denoiser = (str(p) for p in write_toy_graphs(folder, dim=D, music_dim=M, text_dim=T,
                                                        cache_dim=C))
anchored_step = folder / "sampler_anchored.onnx"
anchored_step.write_bytes(build_sampler_graph(D, L, HOP, ANCHORS, ZERO))
free_step = folder / "sampler_free.onnx"
free_step.write_bytes(build_sampler_graph(D, L, HOP))
upload = folder / "upload.onnx"
upload.write_bytes(build_upload_graph())

native = engine.native()


def config(anchored=True, **changes):
    cfg = native.ModelConfig()
    cfg.dim, cfg.music_dim, cfg.text_dim, cfg.cache_dim = D, M, T, C
    cfg.window, cfg.hop = L, HOP
    cfg.anchor_dims, cfg.anchor_zero = (ANCHORS, ZERO) if anchored else ([], [])
    cfg.norm_center = [0.1] * D
    cfg.norm_half_range = [1.5] * D
    cfg.rot_start, cfg.num_joints = 5, 3
    cfg.schedule_columns = list(TABLE_KEYS)
    cfg.condition_path, cfg.denoiser_path = condition, denoiser
    cfg.sampler_path = str(anchored_step if anchored else free_step)
    cfg.upload_path = str(upload)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def table(steps, eta=1.0):
    s = ddim_schedule(steps, eta, 2.7)
    return np.ascontiguousarray(np.stack([s[k] for k in TABLE_KEYS], 1).astype(np.float32))


# Models refused at load time: every error path after some sessions exist.
corrupt = folder / "corrupt.onnx"
corrupt.write_bytes(b"not an onnx model")
refused = [
    ({"sampler_path": str(free_step)}, {}),                 # names: no anchors
    ({"upload_path": str(anchored_step)}, {}),              # names: not an upload graph
    ({"cache_dim": C + 1}, {}),                             # width of cond_cache
    ({"denoiser_path": condition}, {}),                     # the wrong graph
    ({"schedule_columns": list(TABLE_KEYS) + ["extra"]}, {}),  # table width
    ({"schedule_columns": list(TABLE_KEYS)[:-1]}, {}),      # a missing column
    ({"condition_path": str(folder / "missing.onnx")}, {}),
    ({"sampler_path": str(corrupt)}, {}),
    ({"norm_center": [0.0]}, {}),
    ({}, {"provider": "metal"}),
    ({}, {"intra_op_threads": -1}),
    ({}, {"provider_options": {"enable_cuda_graph": "1"}}),
]
for changes, options in refused:
    try:
        native.Model(config(**changes), **{"intra_op_threads": 1, **options})
    except gcdance.GCDanceError:
        pass
    else:
        raise SystemExit(f"a Model with {changes} {options} loaded")

models = [native.Model(config(True), intra_op_threads=1),
          native.Model(config(False), intra_op_threads=1)]
for m in models:
    g = native.Generator(m)
    for frames in (10, 27, 10, 33):
        music = rng.standard_normal((frames, M)).astype(np.float32)
        text = rng.standard_normal(T).astype(np.float32)
        known = rng.uniform(-1, 1, (frames, D)).astype(np.float32)
        mask = np.zeros((frames, D), np.uint8)
        mask[:4] = 1
        mask[:, 7] = 1
        g.generate(music, text, table(4), seed=1)
        g.generate(music, text, table(4, eta=0.0), seed=1, return_windows=False)
        g.generate(music, text, table(1), seed=1)
        g.generate(music, text, table(2), seed=2, known=known, mask=mask.astype(bool))
        wnd = g.num_windows(frames)
        x_T = rng.standard_normal((wnd, L, D)).astype(np.float32)
        z = rng.standard_normal((3, wnd, L, D)).astype(np.float32)
        g.generate(music, text, table(3), x_T=x_T, z=z)
        g.generate(music, text, table(3), x_T=x_T, z=z, zq=z, known=known, mask=mask)
    for bad in ({"music": music[:, :2]}, {"known": known}, {"x_T": x_T[:1], "z": z},
                {"known": known, "mask": mask.astype(np.float32)}, {"schedule": table(3)[:0]}):
        args = {"music": music, "text_emb": text, "schedule": table(3), **bad}
        try:
            g.generate(**args)
        except gcdance.InputError:
            pass
        else:
            raise SystemExit(f"a bad request was accepted: {sorted(bad)}")
    try:
        g.generate(music, text, table(4), progress=lambda i, n: i < 2)
    except gcdance.EngineError:
        pass

    def fail(i, n):
        raise KeyError("the progress callback's own error")

    try:  # an exception from the callback, mid-loop
        g.generate(music, text, table(4), progress=fail)
    except KeyError:
        pass
    bad = table(4)
    bad[2, 0] = 5000.0  # an ONNX Runtime failure at step 3
    try:
        g.generate(music, text, bad, seed=1)
    except gcdance.EngineError:
        pass
    g.generate(music, text, table(4), seed=3)

# Two threads, one Model, a Generator each; a Generator outliving its Model's other handles.
def work():
    gen = native.Generator(models[0])
    for _ in range(2):
        gen.generate(music, text, table(3), seed=4)

threads = [threading.Thread(target=work) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
survivor = native.Generator(native.Model(config(True), intra_op_threads=1))
survivor.generate(music, text, table(2), seed=5)
del g, models, m
survivor.generate(music, text, table(2), seed=5)
del survivor
print("workload done")
'''


def ours(block: list[str]) -> bool:
    """True when the error's first frame outside valgrind's preload library is gcdance's."""
    for line in block[1:]:
        m = re.search(r"(?:at|by) 0x[0-9A-F]+: (.*)", line)
        if not m:
            continue
        if "vgpreload" in m.group(1):
            continue
        return "_engine" in m.group(1) or "gcdance::" in m.group(1)
    return False


def leaked_by_us(block: list[str]) -> bool:
    """True when a definite leak's allocation stack passes through gcdance's code."""
    return any(("_engine" in line or "gcdance::" in line) and re.search(r"(?:at|by) 0x", line)
               for line in block[1:])


def main() -> int:
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "workload.py"
        script.write_text(WORKLOAD)
        log = Path(os.environ.get("GCDANCE_MEMCHECK_LOG") or Path(tmp) / "valgrind.log")
        env = dict(os.environ, PYTHONMALLOC="malloc", OMP_NUM_THREADS="1")
        run = subprocess.run(
            ["valgrind", "--tool=memcheck", "--num-callers=30", "--leak-check=full",
             "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
             f"--log-file={log}", sys.executable, str(script), tmp, str(ROOT)],
            env=env, capture_output=True, text=True, check=False)
        print(run.stdout.strip())
        if run.returncode != 0 or "workload done" not in run.stdout:
            print(run.stderr[-4000:], file=sys.stderr)
            return 1
        blocks: list[list[str]] = []
        for line in log.read_text(errors="replace").splitlines():
            body = re.sub(r"^==\d+== ", "", line)
            leak = re.match(r"[\d,]+ (?:\([\d,]+ direct, [\d,]+ indirect\) )?bytes in", body)
            if leak or (re.match(r"[A-Z][a-z]", body) and
                        not body.startswith(("Memcheck", "Copyright", "Using", "Command"))):
                blocks.append([body])
            elif blocks and body.strip():
                blocks[-1].append(body)
        errors = [b for b in blocks if ("Invalid" in b[0] or "uninitialised" in b[0]
                                        or "overlap" in b[0] or "Mismatched" in b[0])]
        # A definite leak is ours when gcdance's code made the allocation (any frame).
        leaks = [b for b in blocks if "definitely lost" in b[0]]
        mine = [b for b in errors if ours(b)] + [b for b in leaks if leaked_by_us(b)]
        print(f"valgrind: {len(errors)} error reports and {len(leaks)} definite leaks in total, "
              f"{len(mine)} in gcdance's code")
        for b in mine[:5]:
            print("\n".join(b[:12]), file=sys.stderr)
        return 1 if mine else 0


if __name__ == "__main__":
    sys.exit(main())
