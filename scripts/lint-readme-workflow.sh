#!/usr/bin/env bash
# actionlint on the README's example workflow for a driver repository (its
# ```yaml block), in a scratch repository of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/.github/workflows"
awk '/^```yaml$/ { inside = 1; next } /^```$/ { inside = 0 } inside' README.md \
    > "$dir/.github/workflows/driver.yml"
if [ ! -s "$dir/.github/workflows/driver.yml" ]; then
    echo "lint-readme-workflow: no \`\`\`yaml block in README.md" >&2
    exit 1
fi
git -C "$dir" init --quiet
(cd "$dir" && actionlint)
