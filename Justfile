# kcycle developer tasks. `just ci` is the main job; `just test` runs the tests.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build or reuse the kernel and image, boot, run the default suites (kcycle.toml), write results/.
ci:
    cargo run --release --quiet -p kcycle -- ci

# Format check, clippy, then every test: unit tests and the real-QEMU end-to-end tests.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    if [ -z "${KCYCLE_KERNEL:-}" ]; then
        # The end-to-end tests boot the real guest kernel: build it, or take it from the cache.
        KCYCLE_KERNEL="$(cargo run --quiet -p kcycle -- --progress never kernel build | tail -n 1)"
        export KCYCLE_KERNEL
    fi
    echo "just test: guest kernel $KCYCLE_KERNEL"
    cargo nextest run --workspace --no-fail-fast ${CI:+--profile ci}

# Only the unit tests: no kernel, no QEMU, seconds.
unit:
    cargo nextest run --workspace --lib --bins

# Benchmarks (speed is measured here, never asserted in tests).
bench:
    cargo bench --workspace

# Lints beyond clippy: workflow files.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
