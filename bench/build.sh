#!/usr/bin/env bash
# Build the benchmark programs in bench/src.
#
# wasm32-wasi modules go to bench/wasm/ (committed, so every measurement runs
# the same bytes) and native gcc builds to bench/build/ (not committed).
# Usage: bench/build.sh [--native-only]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/src"
mkdir -p "$here/wasm" "$here/build"

native_only=0
if [[ "${1:-}" == "--native-only" ]]; then
    native_only=1
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--native-only]" >&2
    exit 2
fi

if ! command -v gcc >/dev/null; then
    echo "bench/build.sh: gcc is not installed (apt-get install gcc)" >&2
    exit 1
fi
if [[ $native_only == 0 ]] && ! python3 -c "import ziglang" 2>/dev/null; then
    echo "bench/build.sh: the ziglang package is missing (pip install ziglang)" >&2
    exit 1
fi

for file in "$src"/*.c; do
    name="$(basename "$file" .c)"
    # -ffp-contract=off keeps gcc from fusing a*b+c into FMA, which wasm lacks,
    # so the floating-point checksums match across targets.
    gcc -O2 -ffp-contract=off -o "$here/build/$name" "$file" -lm
    if [[ $native_only == 0 ]]; then
        python3 -m ziglang cc --target=wasm32-wasi -O2 -s -o "$here/wasm/$name.wasm" "$file"
    fi
    echo "built $name"
done
