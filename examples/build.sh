#!/usr/bin/env bash
# Build the example jobs, and the runtime's C test modules, to wasm32-wasi.
#
# Usage: examples/build.sh [OUTDIR]   (default: in place, next to each source)
#
# Needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (or the same from another
# distribution: set CC and SYSROOT). Users do not need this: the built .wasm files are committed,
# and tests/daemon/runtime/test_examples.py checks that they match their sources.
# Output is stripped of debug info but keeps function names, so a trap says where it happened.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT}"
cd "$ROOT"

CC="${CC:-clang}"
SYSROOT="${SYSROOT:-/usr}"
CFLAGS=(--target=wasm32-wasi --sysroot="$SYSROOT" -O2 -Wall -Wextra -Werror -Wl,--strip-debug)

if ! command -v "$CC" >/dev/null; then
    echo "build.sh: $CC not found: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    exit 1
fi
if [ ! -e "$SYSROOT/include/wasm32-wasi/stdio.h" ]; then
    echo "build.sh: no wasi-libc under $SYSROOT: apt-get install wasi-libc (or set SYSROOT)" >&2
    exit 1
fi

build() {  # build SOURCE.c [extra flags]  ->  OUT/SOURCE.wasm
    local src="$1"; shift
    local out="$OUT/${src%.c}.wasm"
    mkdir -p "$(dirname "$out")"
    "$CC" "${CFLAGS[@]}" -o "$out" "$src" "$@"
    echo "built ${src%.c}.wasm ($(wc -c <"$out") bytes, sha256 $(sha256sum "$out" | cut -c1-16)...)"
}

build examples/pi/pi.c
build examples/sweep/sweep.c -lm
build examples/life/life.c -mexec-model=reactor -mmutable-globals -Wl,--export=__stack_pointer
build tests/daemon/runtime/wasm/probe.c
build tests/daemon/runtime/wasm/hog.c
