#!/usr/bin/env bash
# The GPU proof kit in one command: install the carried wheels, check the environment, measure every
# stage (each run capped, the whole under 8 minutes), write gpu_report.json and gpu_report.md into $OUT
# (default ./gpu_report) and print the Markdown report last. See docs/benchmarks.md.
#
#     bash benchmarks/gpu/fetch_wheels.sh                  # once, on a machine with a package registry
#     OUT=/tmp/report bash benchmarks/gpu/run_all.sh       # on the GPU machine, from the repository root
#     bash benchmarks/gpu/run_all.sh --device cpu --smoke  # tiny shapes in seconds (the test suite runs this)
#
# Options after the script name go to benchmarks/gpu/kit.py (--budget-s, --only SECTION..., --peak-tflops).
# Wheels in .whl/ are installed into a private folder put first on PYTHONPATH (the machine's own packages
# stay as they are); --no-wheels, or no .whl/, runs with the current environment.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/gpu_report}"
export OUT
args=()
wheels=1
for arg in "$@"; do
    if [[ "$arg" == "--no-wheels" ]]; then wheels=0; else args+=("$arg"); fi
done
shopt -s nullglob
carried=(.whl/*.whl)
if (( wheels )) && (( ${#carried[@]} )); then
    SITE="${SITE:-${TMPDIR:-/tmp}/medreason-kit-site}"
    echo "[run_all] installing ${#carried[@]} carried wheels into $SITE" >&2
    if ! "$PY" -m pip install -q --no-index --no-deps --target "$SITE" --upgrade "${carried[@]}" >&2; then
        echo "[run_all] installing the carried wheels failed; see above" >&2
        exit 1
    fi
    export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    args+=(--expect-pins)
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" benchmarks/gpu/kit.py --out "$OUT" --command "bash benchmarks/gpu/run_all.sh $*" "${args[@]}"
