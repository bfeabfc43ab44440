#!/usr/bin/env bash
# What CI runs: the project's test command (which installs the system tools the tests call),
# then a short fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."

# `cargo xtask test` installs the system tools the tests call (xz, curl, nc, socat, python3,
# liblzma's headers) when they are missing.

# cargo xtask test checks that the workspace-hack crate is current when cargo-hakari is here
# (about 3 minutes to install on 2 cores).
cargo hakari --version >/dev/null 2>&1 || cargo install cargo-hakari --locked

cargo xtask test

# Fuzz every codec and preprocessor for a short while (10 s each: about 7 minutes with a cold
# fuzz build on 2 cores, 3.5 warm). Needs the nightly toolchain and cargo-fuzz.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo xtask fuzz --seconds 10
