#!/usr/bin/env bash
# Build gcdance's default model in one command (corpus seed 0 -> training with
# training/configs/default_corpus.toml -> bundle in python/gcdance/data/default_bundle), then
# print the evaluation commands. Needs the `train` and `corpus` extras:
#   pip install ".[train,corpus]"
#   tools/train_default_model.sh [--force] [--set section.key=value ...]
# An existing default bundle is replaced only with --force; an interrupted run resumes from its
# latest checkpoint when started again. PYTHON selects the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" tools/train_default_model.py "$@"
