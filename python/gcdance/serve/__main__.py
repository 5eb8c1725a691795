"""``python -m gcdance.serve [options]``: the same as ``gcdance serve [options]``."""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
