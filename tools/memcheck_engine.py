"""Run the native engine's code paths under valgrind and fail on errors in gcdance's own code.

    python tools/memcheck_engine.py            # needs valgrind and an installed gcdance
    GCDANCE_MEMCHECK_LOG=vg.log python tools/memcheck_engine.py   # keep valgrind's log

It writes small denoiser-shaped ONNX models (onnx.helper; no torch): a single graph and split
graphs (condition + step, the default path). Then, inside valgrind (memcheck), it runs
gcdance._engine: Session runs with buffer reuse and reshapes, Generators over one and three
windows and back on the host loop, the device loop and the device loop's kept buffer sets (what
CUDA graphs use), with root anchoring, inpainting, seeded and injected noise, a cancellation, an
exception from the progress callback, an ONNX Runtime failure inside the loop (kept sets dropped)
and error paths. Leak checking is on: a definite leak whose allocation passed through gcdance's
code counts as ours.
Python and ONNX Runtime produce reports of their own (uninitialised reads in the interpreter's
GC, an overlapping memcpy in ORT's environment set-up); an error counts as ours when the first
stack frame outside valgrind's preload library is in gcdance's module. Exit 0: none of ours.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WORKLOAD = r'''
import sys
import numpy as np
import gcdance
from gcdance import engine
from onnx import TensorProto, helper, numpy_helper
import onnx

D, M, T = 319, 35, 512
rng = np.random.default_rng(0)
w = numpy_helper.from_array((rng.standard_normal((M, D)) * 0.1).astype(np.float32), "W")
nodes = [
    helper.make_node("MatMul", ["music", "W"], ["mw"]),
    helper.make_node("Add", ["x_t", "mw"], ["s"]),
    helper.make_node("Unsqueeze", ["t", "ax"], ["t1"]),
    helper.make_node("Unsqueeze", ["t1", "ax2"], ["t2"]),
    helper.make_node("Div", ["t2", "k"], ["tk"]),
    helper.make_node("Add", ["s", "tk"], ["s2"]),
    helper.make_node("Tanh", ["s2"], ["x0"]),
]
graph = helper.make_graph(nodes, "den", [
    helper.make_tensor_value_info("x_t", TensorProto.FLOAT, ["b", "n", D]),
    helper.make_tensor_value_info("t", TensorProto.FLOAT, ["b"]),
    helper.make_tensor_value_info("music", TensorProto.FLOAT, ["b", "n", M]),
    helper.make_tensor_value_info("text_emb", TensorProto.FLOAT, ["b", T]),
    helper.make_tensor_value_info("cond_mask", TensorProto.FLOAT, ["b"])],
    [helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["b", "n", D])],
    initializer=[w, numpy_helper.from_array(np.array([1], np.int64), "ax"),
                 numpy_helper.from_array(np.array([2], np.int64), "ax2"),
                 numpy_helper.from_array(np.array(1000.0, np.float32), "k")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
path = sys.argv[1]
onnx.save(model, path)

s = engine.Session(path, provider="cpu", intra_op_threads=1)
feeds = {"x_t": np.zeros((2, 120, D), np.float32), "t": np.ones(2, np.float32),
         "music": np.zeros((2, 120, M), np.float32), "text_emb": np.zeros((2, T), np.float32),
         "cond_mask": np.ones(2, np.float32)}
for n in (120, 120, 37):
    feeds["x_t"] = rng.standard_normal((2, n, D)).astype(np.float32)
    feeds["music"] = rng.standard_normal((2, n, M)).astype(np.float32)
    s.run(feeds)
try:
    s.run({"x_t": feeds["x_t"]})
except gcdance.InputError:
    pass

from gcdance.stitching import handover_weights

native = engine.native()
cfg = native.ModelConfig()
cfg.dim, cfg.music_dim, cfg.text_dim = D, M, T
cfg.anchor_dims, cfg.anchor_zero = [4, 6], [0.0, 0.0]
cfg.handover = handover_weights(60, np.float32).tolist()
cfg.norm_center = [0.0] * D
cfg.norm_half_range = [1.0] * D
from gcdance.update_graph import build_update_graph, build_upload_graph
cfg.update_graph = build_update_graph(D, 120, 60, [4, 6], [0.0, 0.0])
cfg.upload_graph = build_upload_graph()
m = native.Model(path, cfg, intra_op_threads=1)
table = np.tile(np.array([[500, 400, 0.6, 0.8, 0.7, 0.71, 0.1, 0.7, 2.7]], np.float32), (4, 1))
table[-1, 4:8] = [1.0, 0.0, 0.0, 0.0]
# Split graphs (the default path): a condition graph computes the cache once per generation,
# the step graph reads it every step.
C = 8
wc = numpy_helper.from_array((rng.standard_normal((M, C)) * 0.1).astype(np.float32), "Wc")
wd = numpy_helper.from_array((rng.standard_normal((C, D)) * 0.1).astype(np.float32), "Wd")
condition = helper.make_graph(
    [helper.make_node("MatMul", ["music", "Wc"], ["cond_cache"])], "condition", [
        helper.make_tensor_value_info("music", TensorProto.FLOAT, ["b", "n", M]),
        helper.make_tensor_value_info("text_emb", TensorProto.FLOAT, ["b", T]),
        helper.make_tensor_value_info("cond_mask", TensorProto.FLOAT, ["b"])],
    [helper.make_tensor_value_info("cond_cache", TensorProto.FLOAT, ["b", "n", C])],
    initializer=[wc])
step = helper.make_graph(
    [helper.make_node("MatMul", ["cond_cache", "Wd"], ["cw"]),
     helper.make_node("Add", ["x_t", "cw"], ["s"]),
     helper.make_node("Unsqueeze", ["t", "ax"], ["t1"]),
     helper.make_node("Unsqueeze", ["t1", "ax2"], ["t2"]),
     helper.make_node("Div", ["t2", "k"], ["tk"]),
     helper.make_node("Add", ["s", "tk"], ["s2"]),
     helper.make_node("Tanh", ["s2"], ["x0"])], "step", [
        helper.make_tensor_value_info("x_t", TensorProto.FLOAT, ["b", "n", D]),
        helper.make_tensor_value_info("t", TensorProto.FLOAT, ["b"]),
        helper.make_tensor_value_info("text_emb", TensorProto.FLOAT, ["b", T]),
        helper.make_tensor_value_info("cond_mask", TensorProto.FLOAT, ["b"]),
        helper.make_tensor_value_info("cond_cache", TensorProto.FLOAT, ["b", "n", C])],
    [helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["b", "n", D])],
    initializer=[wd, numpy_helper.from_array(np.array([1], np.int64), "ax"),
                 numpy_helper.from_array(np.array([2], np.int64), "ax2"),
                 numpy_helper.from_array(np.array(1000.0, np.float32), "k")])
for g_, name in ((condition, "condition.onnx"), (step, "step.onnx")):
    mp = helper.make_model(g_, opset_imports=[helper.make_opsetid("", 17)])
    mp.ir_version = 8
    onnx.save(mp, path + "." + name)
split_cfg = native.ModelConfig()
for attr in ("dim", "music_dim", "text_dim", "anchor_dims", "anchor_zero", "handover",
             "norm_center", "norm_half_range", "update_graph", "upload_graph"):
    setattr(split_cfg, attr, getattr(cfg, attr))
split_cfg.condition_path = path + ".condition.onnx"
split_cfg.cache_dim = C
split_cfg.input_cache = split_cfg.output_cache = "cond_cache"
split = native.Model(path + ".step.onnx", split_cfg, intra_op_threads=1)
assert split.split

loops = [native.Generator(m), native.Generator(m, device_loop=True),  # host and device loops
         native.Generator(split), native.Generator(split, device_loop=True),
         native.Generator(split, device_loop=True, keep_shapes=True)]  # CUDA graphs' buffer sets
for g in loops:
    for frames in (120, 250, 120):
        music = rng.standard_normal((frames, M)).astype(np.float32)
        text = rng.standard_normal(T).astype(np.float32)
        g.generate(music, text, table, seed=1)
        known = rng.standard_normal((frames, D)).astype(np.float32)
        mask = np.zeros((frames, D), np.uint8)
        mask[:30] = 1
        g.generate(music, text, table, seed=2, known=known, mask=mask)
        wnd = g.num_windows(frames)
        x_T = rng.standard_normal((wnd, 120, D)).astype(np.float32)
        z = rng.standard_normal((4, wnd, 120, D)).astype(np.float32)
        g.generate(music, text, table, x_T=x_T, z=z)
    try:
        g.generate(music[:, :3], text, table)
    except gcdance.InputError:
        pass
    try:
        g.generate(music, text, table, progress=lambda i, n: i < 2)
    except gcdance.EngineError:
        pass

    def fail(i, n):
        raise KeyError("the progress callback's own error")

    try:  # an exception from the callback, mid-loop
        g.generate(music, text, table, progress=fail)
    except KeyError:
        pass
    g.generate(music, text, table, seed=3)

# An ONNX Runtime failure inside the loop (Gather out of bounds for t >= 1000): kept sets are
# dropped and built again.
e = numpy_helper.from_array((rng.standard_normal((1000, D)) * 0.1).astype(np.float32), "E")
gather = helper.make_graph(
    [helper.make_node("Cast", ["t"], ["ti"], to=TensorProto.INT64),
     helper.make_node("Gather", ["E", "ti"], ["et"]),
     helper.make_node("Unsqueeze", ["et", "ax"], ["et1"]),
     helper.make_node("Add", ["x_t", "et1"], ["s"]),
     helper.make_node("Tanh", ["s"], ["x0"])], "gather", graph.input, graph.output,
    initializer=[e, numpy_helper.from_array(np.array([1], np.int64), "ax")])
mp = helper.make_model(gather, opset_imports=[helper.make_opsetid("", 17)])
mp.ir_version = 8
onnx.save(mp, path + ".gather.onnx")
g = native.Generator(native.Model(path + ".gather.onnx", cfg, intra_op_threads=1),
                     device_loop=True, keep_shapes=True)
music = rng.standard_normal((250, M)).astype(np.float32)
g.generate(music, text, table, seed=1)
bad = table.copy()
bad[2, 0] = 5000.0
try:
    g.generate(music, text, bad, seed=1)
except gcdance.EngineError:
    pass
assert g.buffer_sets == (0, 0), g.buffer_sets
g.generate(music, text, table, seed=1)
del loops, g, m, split, s
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
        env = dict(os.environ, PYTHONMALLOC="malloc")
        run = subprocess.run(
            ["valgrind", "--tool=memcheck", "--num-callers=30", "--leak-check=full",
             "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
             f"--log-file={log}", sys.executable, str(script), str(Path(tmp) / "den.onnx")],
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
