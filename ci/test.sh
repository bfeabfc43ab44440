#!/usr/bin/env bash
# What CI runs: installs the few system tools the tests call, then the project's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v xz >/dev/null || need+=(xz-utils)
command -v cc >/dev/null || need+=(gcc)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/include/lzma.h ] || need+=(liblzma-dev)
# The network connectors' tests use real peers: curl, netcat-openbsd (nc -N), socat, python3.
command -v curl >/dev/null || need+=(curl)
command -v nc.openbsd >/dev/null || need+=(netcat-openbsd)
command -v socat >/dev/null || need+=(socat)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

# cargo xtask test checks that the workspace-hack crate is current when cargo-hakari is here
# (about 3 minutes to install on 2 cores).
cargo hakari --version >/dev/null 2>&1 || cargo install cargo-hakari --locked

cargo xtask test

# Fuzz every codec and preprocessor for a short while (10 s each: about 7 minutes with a cold
# fuzz build on 2 cores, 3.5 warm). Needs the nightly toolchain and cargo-fuzz.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo xtask fuzz --seconds 10
