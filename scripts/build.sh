#!/usr/bin/env bash
# Configures and builds flava in build/ (out of tree). Extra arguments go to
# configure, e.g. scripts/build.sh --enable-sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
mkdir -p build
cd build
if [ ! -f Makefile ] || [ $# -gt 0 ]; then ../configure "$@"; fi
make -j"$(nproc)"
