"""``python -m training``: train the GCDance denoiser from a config file.

    python -m training --config run.toml                       # train
    python -m training --config run.toml --set train.max_steps=1000 --set mtl.method=nash
    python -m training --config run.toml --resume runs/x       # resume (latest checkpoint)
    python -m training --config run.toml --resume auto         # resume out_dir if possible
    python -m training --config run.toml --prepare             # build the data cache only
    torchrun --nproc_per_node 4 -m training --config run.toml  # multi-process (DDP-style)

The config (TOML or JSON) has the sections [data], [model], [optim], [mtl], [train] and
[sampling] (the exported bundle's defaults), and [distill] for step distillation
(``training.distill``); see ``training.train`` for every key. Errors in
the config or the data are reported in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gcdance.errors import GCDanceError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training",
                                     description="Train (or distil) the GCDance denoiser.")
    parser.add_argument("--config", required=True, help="TOML or JSON training config")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE",
                        help="override a config value (JSON values; repeatable)")
    parser.add_argument("--resume", metavar="PATH",
                        help="checkpoint (.safetensors/.json) or run directory to resume "
                             "from; 'auto': train.out_dir's latest checkpoint if any")
    parser.add_argument("--prepare", action="store_true",
                        help="build the preprocessing cache (windows, features, text) and exit")
    args = parser.parse_args(argv)
    try:
        from training.train import load_config

        config = load_config(args.config, args.overrides)
        if args.prepare:
            from training.data import prepare_data, prepare_text

            def log(msg: str) -> None:
                print(msg, file=sys.stderr)

            data = prepare_data(config.data, log=log)
            text = prepare_text(config.data, log=log)
            print(f"windows: {data.path} ({len(data)} windows)\ntext: {text}")
            return 0
        from training.train import train

        summary = train(config, resume=args.resume)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"finished at step {summary['step']}; checkpoints in {summary['out_dir']}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # The run is saved and its process group destroyed, yet about one torchrun rank in 50
        # aborted in interpreter shutdown ("terminate called without an active exception" in a
        # C++ thread of torch's gloo teardown, no Python frame): the job then failed although
        # training had finished. A finished rank therefore skips the shutdown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
