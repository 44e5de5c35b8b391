# kcycle developer tasks. `just ci` is the main job; `just test` runs the tests.

set shell := ["bash", "-euo", "pipefail", "-c"]

kcycle := "cargo run --release --quiet -p kcycle --"

# Build or reuse the kernel and image, boot, run the default suites, write results/.
ci:
    {{kcycle}} ci

# Format check, clippy, then every test (unit and real-QEMU end-to-end).
test:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo nextest run --workspace --no-fail-fast

# Benchmarks (speed is measured here, never asserted in tests).
bench:
    cargo bench --workspace

# Lints beyond clippy: workflow files.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
