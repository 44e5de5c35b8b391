#!/usr/bin/env bash
# Soak: CYCLES load/unload cycles of rust_i915_table in one guest. Records
# kcycle's resident memory and open file descriptors early and at the end
# (they must not grow) and the wall time per cycle, into docs/soak.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-200}"

cargo build --release --quiet -p kcycle
kcycle=target/release/kcycle
kernel="${KCYCLE_KERNEL:-$($kcycle --progress never kernel build | tail -n 1)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat > "$work/soak.toml" <<SUITE
name = "soak"
[[test]]
name = "load-unload"
cycles = $cycles
steps = [{ load = "rust_i915_table" }, { unload = "rust_i915_table" }]
SUITE

sample() { # pid -> "rss_kib fds"
    local rss fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
    echo "$rss $fds"
}

"$kcycle" --progress never run "$work/soak.toml" --kernel "$kernel" --results "$work/results" \
    2> "$work/stderr" &
pid=$!
# "Start" is once the guest is up and the first cycles ran.
for _ in $(seq 1 600); do
    grep -q "ready after" "$work/stderr" 2>/dev/null && break
    sleep 0.5
done
sleep 10
read -r rss_start fds_start < <(sample "$pid")
rss_end=$rss_start; fds_end=$fds_start; peak=0
while kill -0 "$pid" 2>/dev/null; do
    read -r rss fds < <(sample "$pid")
    if [ "$rss" -gt 0 ]; then rss_end=$rss; fds_end=$fds; fi
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 2
done
status=0; wait "$pid" || status=$?
duration=$(python3 -c "import json,sys; d=json.load(open('$work/results/results.json')); t=d['tests']['kcycle@soak@load-unload']; print(round(t['time']['end']-t['time']['start'],1), t['result'])")
read -r seconds result <<< "$duration"
per_cycle=$(python3 -c "print(round($seconds / $cycles, 3))")

cat > docs/soak.md <<DOC
# Soak: $cycles load/unload cycles of rust_i915_table

Made by \`just soak $cycles\` (scripts/soak.sh) on $(date -u +%Y-%m-%d), kernel $(basename "$kernel"),
$(nproc) cores, accel as chosen by \`--accel auto\` (see below).

| measure | value |
|---|---|
| test result | $result (kcycle exit $status) |
| wall time of the test | $seconds s |
| per cycle (load + unload, each with log, slab, debugfs and taint checks) | $per_cycle s |
| kcycle RSS after the first cycles | $rss_start KiB |
| kcycle RSS at the end | $rss_end KiB |
| kcycle peak RSS (sampled every 2 s) | $peak KiB |
| open file descriptors after the first cycles | $fds_start |
| open file descriptors at the end | $fds_end |

kcycle's stderr:

\`\`\`
$(grep -v '^$' "$work/stderr" | head -20)
\`\`\`
DOC
cat docs/soak.md
[ "$status" -eq 0 ] && [ "$fds_end" -le "$fds_start" ]
