#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu/wheels.txt for the GPU machine (CPython 3.12, manylinux x86_64)
# into .whl/ at the repository root (git-ignored), copy the benchmark data run_all.sh reads into
# .whl/data/, check the whole folder stays under 50 MiB (a device call carries 64 MiB in all), and print
# the `carry` list for the device call.
#
#     bash benchmarks/gpu/fetch_wheels.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.whl"
DATA="${MEDREASON_SHARED_DATA:-$ROOT/../shared/data}"
LIMIT_MIB=50
PY="${PYTHON:-python3}"
mkdir -p "$DEST/data"
# manylinux_2_28 and older tags cover what pip finds for these pins; newer glibc tags are tried too, since
# some projects (hf-xet, tokenizers) publish only manylinux_2_3x wheels for recent releases.
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_34_x86_64 \
           manylinux_2_31_x86_64 manylinux_2_24_x86_64; do
    PLATFORMS+=(--platform "$tag")
done
grep -v '^\s*#' "$ROOT/benchmarks/gpu/wheels.txt" | grep -v '^\s*$' | while read -r spec comment; do
    name="${spec%%==*}"
    if compgen -G "$DEST/$(echo "$name" | tr - _)-${spec##*==}-*.whl" > /dev/null \
        || compgen -G "$DEST/${name}-${spec##*==}-*.whl" > /dev/null; then
        continue  # already fetched
    fi
    if [[ "$comment" == *"sdist only"* ]]; then
        # A pure-Python sdist: its wheel (py3-none-any) is the same on every platform.
        "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$spec"
    else
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            "${PLATFORMS[@]}" -d "$DEST" "$spec"
    fi
done
# The real benchmark data the kit evaluates on (never committed: several sources carry no licence to
# redistribute); it travels in the ignored folder.
for file in eval/medqa.jsonl eval/mmlu_pro_medical.jsonl train/huatuo_o1_demo_sft.jsonl; do
    if [[ ! -f "$DATA/$file" ]]; then
        echo "fetch_wheels.sh: $DATA/$file not found; set MEDREASON_SHARED_DATA to the shared data folder" >&2
        exit 1
    fi
    mkdir -p "$DEST/data/$(dirname "$file")"
    cp "$DATA/$file" "$DEST/data/$file"
done
expected=$(grep -v '^\s*#' "$ROOT/benchmarks/gpu/wheels.txt" | grep -cv '^\s*$')
found=$(find "$DEST" -maxdepth 1 -type f -name '*.whl' | wc -l)
if [[ "$found" -ne "$expected" ]]; then
    echo "fetch_wheels.sh: $found wheels in $DEST, wheels.txt pins $expected; remove stale ones and rerun" >&2
    exit 1
fi
bytes=$(du -sb "$DEST" | cut -f1)
mib=$("$PY" -c "print(f'{$bytes / 2**20:.1f}')")
echo "fetch_wheels.sh: $found wheels + data in .whl/: $mib MiB (limit $LIMIT_MIB MiB)"
if (( bytes > LIMIT_MIB * 1024 * 1024 )); then
    echo "fetch_wheels.sh: .whl/ is over $LIMIT_MIB MiB; drop a wheel from wheels.txt" >&2
    exit 1
fi
echo 'carry: [".whl"]'
