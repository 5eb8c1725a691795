#!/usr/bin/env bash
# Build the engine with AddressSanitizer + UBSan (CMake option GCDANCE_SANITIZE) into a venv of
# its own and run the engine's tests under it; exits non-zero on a test failure or any report.
#
#   bash tools/sanitize_tests.sh [VENV]        # default VENV: .venv-sanitize (about 3 minutes)
#
# The Python interpreter is not built with ASan, so the runtime is preloaded, with libstdc++
# (ASan must see C++ exceptions' __cxa_throw from the start). Leak checking is left to
# tools/memcheck_engine.py (valgrind): the interpreter's own allocations at exit drown it here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-sanitize}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q ".[test]" -C build-dir=build/sanitize \
  -C cmake.define.GCDANCE_SANITIZE=ON
LOG=$(mktemp -d)/asan
PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
status=0
( cd /tmp && LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="detect_leaks=0:log_path=$LOG" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOG" \
  "$VENV/bin/python" -m pytest "$OLDPWD/tests/test_engine_session.py" \
  "$OLDPWD/tests/test_engine_generator.py" "$OLDPWD/tests/test_update_graph.py" \
  "$OLDPWD/tests/test_generator.py" -q -p no:cacheprovider ) || status=$?
if compgen -G "$LOG*" > /dev/null; then
  echo "sanitizer reports:" >&2
  head -60 "$LOG"* >&2
  exit 1
fi
exit $status
