"""The ``gcdance`` command line.

Each subcommand is one ``add_<name>(subparsers)`` function that declares its arguments and sets
``func`` to a ``cmd_<name>(args) -> int`` handler; :data:`SUBCOMMANDS` lists them in help order.
Exit codes: 0 success, 1 a check failed, 2 bad input or any :class:`GCDanceError` (the message
goes to stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .conditioning.genres import DATASETS, DEFAULT_DATASET, REGISTRY
from .errors import GCDanceError, InputError

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


# --------------------------------------------------------------------------- genres


def add_genres(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "genres", help="list the genres, or classify a text prompt into one",
        description="List both datasets' genres (ids, names, aliases), or map a prompt to a "
                    "genre distribution with classifier P. A prompt that is exactly a genre "
                    "name or alias resolves without the classifier.")
    p.add_argument("--classify", metavar="TEXT", help="prompt to classify")
    p.add_argument("--dataset", choices=(*DATASETS, "all"), default=None,
                   help=f"genre set (default: all when listing, {DEFAULT_DATASET} when "
                        "classifying)")
    p.add_argument("--top", type=int, default=5, metavar="N",
                   help="genres shown when classifying (text output; default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_genres)


def cmd_genres(args: argparse.Namespace) -> int:
    if args.classify is None:
        return _list_genres(args)
    from .conditioning.genre_classifier import (
        classify_genre,  # numpy and the encoder only when classifying
    )

    if args.dataset == "all":
        print("error: --classify needs one dataset: --dataset finedance or aistpp",
              file=sys.stderr)
        return EXIT_ERROR
    dataset = args.dataset or DEFAULT_DATASET
    probs = classify_genre(args.classify, dataset)
    exact = REGISTRY.resolve(args.classify, dataset)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    genre = ranked[0][0]
    if args.json:
        print(json.dumps({"text": args.classify, "dataset": dataset, "genre": genre,
                          "genre_id": REGISTRY.get(genre, dataset).id,
                          "exact_match": exact is not None, "probabilities": probs}, indent=2))
        return EXIT_OK
    how = "exact name/alias" if exact is not None else "classifier P"
    print(f"{genre}  ({dataset} genre {REGISTRY.get(genre, dataset).id}, by {how})")
    if exact is None:
        for name, p in ranked[: max(args.top, 1)]:
            print(f"  {name:<18} {p:6.1%}")
    return EXIT_OK


def _list_genres(args: argparse.Namespace) -> int:
    datasets = DATASETS if args.dataset in (None, "all") else (args.dataset,)
    if args.json:
        full = REGISTRY.to_dict()
        print(json.dumps({ds: full[ds] for ds in datasets}, indent=2))
        return EXIT_OK
    for ds in datasets:
        print(f"{ds}:")
        for g in REGISTRY.genres(ds):
            label = f"{g.name} [{g.code}]" if g.code else g.name
            print(f"  {g.id:>2}  {label:<24} {', '.join(g.aliases)}")
    return EXIT_OK


# --------------------------------------------------------------------------- progress


class ProgressBar:
    """A one-line progress bar on stderr when it is a terminal (``progress(step, steps)``)."""

    def __init__(self, label: str, quiet: bool = False, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.label = label
        self.start = time.perf_counter()

    def __call__(self, step: int, steps: int) -> bool:
        if self.enabled:
            width = 30
            done = int(width * step / max(steps, 1))
            elapsed = time.perf_counter() - self.start
            self.stream.write(f"\r{self.label} [{'#' * done}{'.' * (width - done)}] "
                              f"{step}/{steps} {elapsed:5.1f}s")
            if step >= steps:
                self.stream.write("\n")
            self.stream.flush()
        return True


def _say(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


# --------------------------------------------------------------------------- generate / edit


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("song", help="audio file (wav, mp3, flac, ogg/opus)")
    p.add_argument("--prompt", required=True, action="append", metavar="[SECONDS:]TEXT",
                   help="a genre name or a free-text description; repeat it for a dance that "
                        "changes with the song: --prompt jazz --prompt 24:breaking (a leading "
                        "number and the first colon give the start in seconds)")
    p.add_argument("-o", "--output", action="append", metavar="PATH",
                   help="output file, repeatable: .npz, .bvh, .pkl, .glb, .gltf, .html, "
                        ".mp4, .gif "
                        "(default: SONG's name with .npz, in the current directory)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default: the bundle's; 8 for the bundled model)")
    p.add_argument("--guidance", type=float, default=None,
                   help="guidance weight (default: the bundle's; 2.7 in the paper, 3 for the "
                        "bundled model; with a bundle whose weight rises over the steps, the "
                        "weight it reaches)")
    p.add_argument("--sampler", choices=("ddim", "dpmpp"), default=None,
                   help="ddim, or dpmpp (DPM-Solver++ 2M: as good in fewer steps); default: "
                        "the bundle's")
    p.add_argument("--eta", type=float, default=None,
                   help="DDIM eta (default: the bundle's, 0: deterministic)")
    p.add_argument("--start", type=float, default=None, metavar="SEC",
                   help="seconds into the song where the dance starts")
    p.add_argument("--duration", type=float, default=None, metavar="SEC",
                   help="seconds of the song to dance to (default: to the end)")
    p.add_argument("--no-beat-sync", dest="beat_sync", action="store_false",
                   help="keep the model's own timing (default: the dance slows into every beat "
                        "and speeds up between them)")
    p.add_argument("--no-foot-lock", dest="foot_lock", action="store_false",
                   help="keep the model's raw legs (default: planted feet are pinned by leg IK)")
    p.add_argument("--bundle", default=None, metavar="DIR",
                   help="model bundle (default: the bundled default model)")
    _add_engine_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def _add_engine_args(p: argparse.ArgumentParser, provider: str = "auto") -> None:
    """The engine's options, as gcdance.Generator's (generate, edit, bench)."""
    p.add_argument("--provider", default=provider, choices=("auto", "cpu", "cuda", "tensorrt"))
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads (default: one per physical core)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "int8"),
                   help="int8: the denoiser's layers with int8 weights (CPU; a slightly "
                        "different dance)")
    p.add_argument("--device-id", type=int, default=0, metavar="N",
                   help="the GPU to run on (CUDA ordinal; CUDA/TensorRT providers)")


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a dance for a song and a prompt",
                       description="Generate a dance for SONG in the genre the prompt names or "
                                   "describes, and write it in the formats of -o.")
    _add_sampling_args(p)
    p.set_defaults(func=cmd_generate)


def add_edit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edit", help="regenerate parts of a dance (joints and/or time ranges)",
        description="Keep the given joints and frame ranges of a reference dance (.npz written "
                    "by `gcdance generate`) and regenerate the rest for the same song segment.")
    _add_sampling_args(p)
    p.add_argument("--reference", required=True, metavar="DANCE.npz", help="dance to edit")
    p.add_argument("--keep-joints", action="append", default=[], metavar="GROUP",
                   help="keep a joint group (body, hands, upper_body, lower_body, left_hand, "
                        "right_hand) or a joint name; repeatable")
    p.add_argument("--keep-seconds", action="append", default=[], metavar="A:B",
                   help="keep every joint from A to B seconds; repeatable")
    p.set_defaults(func=cmd_edit)


_TIMED = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*:(.*)", re.DOTALL)


def prompt_schedule(prompts: Sequence[str]) -> str | list[tuple[float, str]]:
    """``--prompt`` values as the Generator's prompt: one text, or a schedule. ``SECONDS:TEXT``
    starts at SECONDS (a leading number and the first colon only: "Hip-hop: the 90s" is a text);
    a value without a time starts at 0."""
    if len(prompts) == 1 and not _TIMED.fullmatch(prompts[0]):
        return prompts[0]
    out: list[tuple[float, str]] = []
    for value in prompts:
        m = _TIMED.fullmatch(value)
        out.append((float(m.group(1)), m.group(2).strip()) if m else (0.0, value))
    return out


def _outputs(args: argparse.Namespace) -> list[Path]:
    if args.output:
        return [Path(o) for o in args.output]
    return [Path(Path(args.song).stem + ".npz")]


def _generator(args: argparse.Namespace) -> Any:
    from .engine.generator import Generator

    return Generator(args.bundle, provider=args.provider, threads=args.threads,
                     precision=args.precision, device_id=args.device_id)


def _write(args: argparse.Namespace, dance: Any) -> None:
    for path in _outputs(args):
        written = dance.save(path)
        _say(args, f"wrote {written}")


def cmd_generate(args: argparse.Namespace) -> int:
    outputs = _outputs(args)  # unknown suffixes fail before any work
    _check_suffixes(outputs)
    gen = _generator(args)
    dance = gen.generate(args.song, prompt_schedule(args.prompt), seed=args.seed,
                         steps=args.steps,
                         guidance=args.guidance, eta=args.eta, sampler=args.sampler,
                         start=args.start, duration=args.duration, beat_sync=args.beat_sync,
                         foot_lock=args.foot_lock, progress=ProgressBar("generating", args.quiet))
    _say(args, f"{dance.motion.shape[0]} frames ({dance.motion.shape[0] / dance.fps:.1f} s), "
               f"genre {dance.genre} ({dance.genre_probs[dance.genre]:.0%})")
    _write(args, dance)
    return EXIT_OK


def cmd_edit(args: argparse.Namespace) -> int:
    from . import masks
    from .dance import Dance

    _check_suffixes(_outputs(args))
    if not args.keep_joints and not args.keep_seconds:
        print("error: nothing to keep: give --keep-joints and/or --keep-seconds",
              file=sys.stderr)
        return EXIT_ERROR
    reference = Dance.load(args.reference)
    keep = masks.nothing()
    for group in args.keep_joints:
        keep = keep | masks.joints(group)
    for span in args.keep_seconds:
        try:
            a, b = (float(v) for v in span.split(":"))
        except ValueError:
            print(f"error: --keep-seconds expects A:B in seconds, got {span!r}", file=sys.stderr)
            return EXIT_ERROR
        keep = keep | masks.frames(round(a * reference.fps), round(b * reference.fps))
    gen = _generator(args)
    dance = gen.edit(args.song, prompt_schedule(args.prompt), reference=reference, keep=keep,
                     seed=args.seed,
                     steps=args.steps, guidance=args.guidance, eta=args.eta,
                     sampler=args.sampler, start=args.start,
                     duration=args.duration, beat_sync=args.beat_sync,
                     foot_lock=args.foot_lock, progress=ProgressBar("editing", args.quiet))
    _write(args, dance)
    return EXIT_OK


def _check_suffixes(paths: list[Path]) -> None:
    from .dance import SAVE_SUFFIXES as known  # every format Dance.save writes
    from .errors import InputError
    for p in paths:
        if p.suffix.lower() not in known:
            raise InputError(f"cannot write {p}: unknown format {p.suffix!r}; use one of "
                             f"{', '.join(known)}")


# --------------------------------------------------------------------------- bench


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="time the C++ engine against the PyTorch reference sampler",
        description="Same model (random weights of --config), same steps, schedule and noise, "
                    "measured in one run. Needs torch and the source tree (run it in the "
                    "repository).")
    p.add_argument("--config", default="paper", choices=("paper", "tiny"))
    p.add_argument("--seconds", type=float, default=4.0, help="music length (default 4: one "
                   "window)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-torch", action="store_true", help="time the engine only")
    p.add_argument("--sampler", choices=("ddim", "dpmpp"), default="ddim")
    _add_engine_args(p, provider="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .engine.bench import run_benchmark

    result = run_benchmark(config=args.config, frames=round(args.seconds * 30), steps=args.steps,
                           threads=args.threads, repeat=args.repeat, provider=args.provider,
                           torch_reference=not args.no_torch,
                           precision=args.precision, device_id=args.device_id,
                           sampler=args.sampler, log=lambda m: _say(args, m))
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    return EXIT_OK


# --------------------------------------------------------------------------- info


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info", help="show the engine, its ONNX Runtime, the providers and a model bundle",
        description="Load the native engine and print its version, the ONNX Runtime library it "
                    "loaded (the onnxruntime wheel's), the providers available here, and a "
                    "model bundle's summary (BUNDLE, else the bundled default model).")
    p.add_argument("bundle", nargs="?", default=None,
                   help="model bundle directory (default: the bundled default model)")
    p.add_argument("--bundle", dest="bundle_opt", default=None, metavar="DIR",
                   help="the same as BUNDLE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)


def bundle_summary(bundle: Any) -> dict[str, Any]:
    """What ``gcdance info`` says about a loaded bundle."""
    from .engine.bundle import config_name

    m = bundle.manifest
    prov = bundle.provenance
    sizes = {n: int(f["size"]) for n, f in m["files"].items()}
    return {
        "path": str(bundle.path), "model": config_name(m) or "custom",
        "parameters": m["model"]["parameters"], "weights": m["model"].get("weights"),
        "trained": not prov.get("untrained", False),
        "checkpoint_step": (prov.get("checkpoint") or {}).get("step"),
        "dataset": bundle.dataset, "genres": list(bundle.genres),
        "features": list(bundle.features.sets), "music_dim": bundle.music_dim,
        # seconds of audio after a frame before its features are final; None: no streaming
        "stream_lookahead_s": (None if bundle.features.lookahead_samples is None else round(
            bundle.features.lookahead_samples / bundle.features.sample_rate, 3)),
        "sampler": bundle.sampling.sampler, "timesteps": bundle.sampling.timesteps,
        "steps": bundle.sampling.steps, "guidance": bundle.sampling.guidance,
        "eta": bundle.sampling.eta,
        "format_version": m["format_version"], "size_bytes": sum(sizes.values()),
        "model_card": str(bundle.model_card) if bundle.model_card else None,
    }


def cmd_info(args: argparse.Namespace) -> int:
    from .engine.bundle import DEFAULT_BUNDLE_DIR, MANIFEST, load_bundle
    from .engine.engine import runtime_info

    if args.bundle and args.bundle_opt and args.bundle != args.bundle_opt:
        raise InputError(f"two bundles given ({args.bundle} and --bundle {args.bundle_opt}); "
                         "give one")
    named = args.bundle or args.bundle_opt
    info: dict[str, Any] = {"gcdance": __version__, **runtime_info(), "bundle": None}
    problem = None
    if named is not None or (DEFAULT_BUNDLE_DIR / MANIFEST).is_file():
        try:
            info["bundle"] = bundle_summary(load_bundle(named))
        except GCDanceError as exc:  # the runtime part is still worth printing
            problem = str(exc)
            info["bundle_error"] = problem
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_ERROR if problem else EXIT_OK
    print(f"gcdance {info['gcdance']} (engine {info['engine_version']})")
    print(f"ONNX Runtime {info['onnxruntime_version']}: {info['onnxruntime_library']}")
    print(f"  built against headers of API version {info['headers_api_version']}")
    print(f"providers: {', '.join(info['providers'])}")
    b = info["bundle"]
    if problem is not None:
        print(f"error: model {named or DEFAULT_BUNDLE_DIR} is unusable: {problem}",
              file=sys.stderr)
        return EXIT_ERROR
    if b is None:
        print(f"model: no default model is installed ({DEFAULT_BUNDLE_DIR}); pass a bundle")
        return EXIT_OK
    kind = "default model" if named is None else "model"
    step = f", checkpoint step {b['checkpoint_step']}" if b["checkpoint_step"] else ""
    state = f"trained{step}" if b["trained"] else "UNTRAINED (random weights)"
    print(f"{kind}: {b['path']}")
    print(f"  {b['model']} denoiser, {b['parameters']:,} parameters, {b['weights']} weights, "
          f"{state}")
    print(f"  {b['dataset']}: {len(b['genres'])} genres; music features "
          f"{'+'.join(b['features'])} ({b['music_dim']} dims); {b['size_bytes'] / 1e6:.1f} MB")
    print(f"  sampling: {b['sampler']}, {b['steps']} steps on the {b['timesteps']} timestep "
          f"grid, guidance {b['guidance']:g}, eta {b['eta']:g}")
    ahead = b["stream_lookahead_s"]
    print("  streams (Generator.stream): " + (
        f"yes, features final {ahead:g} s of audio after a frame" if ahead is not None
        else "no, its features look at the whole song (docs/streaming.md)"))
    if b["model_card"]:
        print(f"  model card: {b['model_card']}")
    return EXIT_OK


# --------------------------------------------------------------------------- serve


def add_serve(sub: argparse._SubParsersAction) -> None:
    from .serve.settings import ServeSettings

    d = ServeSettings.__dataclass_fields__
    p = sub.add_parser(
        "serve", help="run the HTTP API and web page (FastAPI under uvicorn)",
        description="Serve POST /api/dances (a song and a prompt -> a dance in every format), "
                    "the web page at / and the API docs at /docs, until Ctrl-C or SIGTERM. "
                    "Needs the serve extra: pip install 'gcdance[serve]'. Limits and "
                    "deployment behind a load balancer: docs/serve.md.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--bundle", default=None, metavar="DIR",
                   help="model bundle (default: the bundled default model)")
    p.add_argument("--store", default=None, metavar="DIR",
                   help="folder for the results; share it between replicas (default: "
                        "$GCDANCE_CACHE/dances or ~/.cache/gcdance/dances)")
    p.add_argument("--workers", type=int, default=d["workers"].default, metavar="N",
                   help="generations at once (default %(default)s; each uses all its cores)")
    p.add_argument("--queue", type=int, default=d["queue"].default, metavar="N",
                   help="requests that may wait for a worker before the rest get 503 "
                        "(default %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=d["max_upload_mb"].default,
                   metavar="MB", help="largest audio upload (default %(default)g MiB)")
    p.add_argument("--max-seconds", type=float, default=d["max_seconds"].default,
                   metavar="SEC", help="longest music to dance to (default %(default)g s)")
    p.add_argument("--max-store-mb", type=float, default=d["max_store_mb"].default,
                   metavar="MB", help="size of the store, the oldest evicted (default "
                                      "%(default)g MiB)")
    p.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda", "tensorrt"))
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import ServeSettings, require_dependencies, run

    require_dependencies()  # before the model loads: the fix is a pip install
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be 1 to 65535, got {args.port}")
    extra = {} if args.store is None else {"store": Path(args.store)}
    settings = ServeSettings(bundle=args.bundle, provider=args.provider, workers=args.workers,
                             queue=args.queue, max_upload_mb=args.max_upload_mb,
                             max_seconds=args.max_seconds, max_store_mb=args.max_store_mb,
                             **extra)
    run(settings, host=args.host, port=args.port)
    return EXIT_OK


# --------------------------------------------------------------------------- entry

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_generate, add_edit, add_genres, add_info, add_bench, add_serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gcdance", description="Genre-controlled, music-driven 3D dance generation.")
    parser.add_argument("--version", action="version", version=f"gcdance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into a program that stopped reading (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
