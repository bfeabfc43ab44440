#!/usr/bin/env bash
# What CI runs: installs the few system tools the tests call, then the project's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v xz >/dev/null || need+=(xz-utils)
command -v cc >/dev/null || need+=(gcc)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/include/lzma.h ] || need+=(liblzma-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

cargo xtask test
