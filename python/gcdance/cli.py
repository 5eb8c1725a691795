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
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import GCDanceError
from .genres import DATASETS, DEFAULT_DATASET, REGISTRY

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
    from .text import classify_genre  # numpy and the encoder only when classifying

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


# --------------------------------------------------------------------------- info


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info", help="show the engine, its ONNX Runtime and the execution providers",
        description="Load the native engine and print its version, the ONNX Runtime library it "
                    "loaded (the onnxruntime wheel's) and the providers available here.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from .engine import runtime_info

    info = {"gcdance": __version__, **runtime_info()}
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"gcdance {info['gcdance']} (engine {info['engine_version']})")
    print(f"ONNX Runtime {info['onnxruntime_version']}: {info['onnxruntime_library']}")
    print(f"  built against headers of API version {info['headers_api_version']}")
    print(f"providers: {', '.join(info['providers'])}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_genres, add_info]


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
