#!/usr/bin/env bash
# Build the engine with AddressSanitizer + UBSan (CMake option GCDANCE_SANITIZE) into a venv of
# its own and run the engine's tests under it; exits non-zero on a test failure or any report.
#
#   bash tools/sanitize_tests.sh [VENV [PYTEST ARGS...]]   # default VENV: .venv-sanitize
#
# The default tests are the ones that run the native engine (tests/test_engine_generator.py:
# Model, Generator and the loop, with their error paths; tests/test_generator.py: the Python
# Generator over the default bundle); PYTEST ARGS replace them (paths relative to the checkout).
# About 3 minutes to build, then the tests at ASan speed.
#
# The Python interpreter is not built with ASan, so the runtime is preloaded, with libstdc++
# (ASan must see C++ exceptions' __cxa_throw from the start). Leak checking is left to
# tools/memcheck_engine.py (valgrind): the interpreter's own allocations at exit drown it here.
# Proven with a planted one-row heap overflow in Generator::Upload (an ASan heap-buffer-overflow
# report, exit 1) and a planted signed overflow in Generator::Generate (a UBSan report, exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-sanitize}
shift || true
if [ $# -gt 0 ]; then
  TESTS=("$@")
else
  TESTS=(tests/test_engine_generator.py tests/test_generator.py)
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
VENV=$(cd "$VENV" && pwd)  # the tests run from /tmp
"$VENV/bin/pip" install -q ".[test]" -C build-dir=build/sanitize \
  -C cmake.define.GCDANCE_SANITIZE=ON
LOGS=$(mktemp -d)
LOG=$LOGS/asan
PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
ARGS=()
for t in "${TESTS[@]}"; do
  # Tests run from /tmp (so that the checkout's python/gcdance is not imported instead of the
  # installed, sanitized build): test paths (FILE or FILE::TEST) become absolute; options and
  # their values stay as they are.
  if [[ "$t" != /* && "$t" != -* && -e "${t%%::*}" ]]; then ARGS+=("$PWD/$t"); else ARGS+=("$t"); fi
done
# ASan writes its reports to log_path; UBSan writes to stderr whatever its log_path says, and
# halts the process there: pytest captures only sys.stderr (--capture=sys), so that the report
# reaches the output, which is kept and searched.
status=0
( cd /tmp && LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="detect_leaks=0:log_path=$LOG" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" OMP_NUM_THREADS=1 \
  "$VENV/bin/python" -m pytest "${ARGS[@]}" -q -p no:cacheprovider --capture=sys ) 2>&1 \
  | tee "$LOGS/pytest.out" || status=$?
if compgen -G "$LOG*" > /dev/null || grep -q "runtime error:" "$LOGS/pytest.out"; then
  echo "sanitizer reports:" >&2
  if compgen -G "$LOG*" > /dev/null; then head -60 "$LOG"* >&2; fi
  grep -A20 "runtime error:" "$LOGS/pytest.out" | head -40 >&2 || true
  exit 1
fi
exit $status
