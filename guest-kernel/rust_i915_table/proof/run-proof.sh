#!/usr/bin/env bash
# Dev proof for rust_i915_table on the real guest kernel, until kcycle's own boot/run land:
# builds the module against a kernel build dir, packs a busybox initramfs with init.sh, boots the
# bzImage once per scenario in QEMU (TCG), and checks the `KCYCLE-CHECK` lines init.sh prints.
#
#   run-proof.sh -k <kernel O= build dir> [-b <bzImage>] [-o <out dir>] [-f <fixtures dir>] [scenario...]
#
# The bzImage defaults to the build dir's arch/x86/boot/bzImage.
# Scenarios (default: all): clean clean-merged legacy legacy-merged fail_at leak_objects
# leak_objects-merged hang_at panic_at. The *-merged ones boot without slub_debug (caches merge).
# Per scenario, <out>/<scenario>.console is the serial console and <out>/<scenario>.dmesg the
# guest's dmesg; with -f the dmesg is also copied to <fixtures>/<scenario>.dmesg (for panic_at:
# <fixtures>/panic_at.console, the console from the load on: no dmesg after a panic).
# Exit status: 0 all checks passed, 1 a check failed, 2 bad usage, 3 build/boot failure.
# Needs qemu-system-x86_64, a static busybox (Debian: busybox-static), gzip; not root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
module_src=$(dirname "$here")
build_dir=""
out=""
fixtures=""
bzimage=""
boot_timeout=${KCYCLE_PROOF_TIMEOUT:-240}

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "k:b:o:f:h" opt; do
	case $opt in
	k) build_dir=$(realpath "$OPTARG") ;;
	b) bzimage=$(realpath "$OPTARG") ;;
	o) out=$OPTARG ;;
	f) fixtures=$(realpath -m "$OPTARG") ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ -n "$build_dir" ] || { echo "run-proof: -k <kernel build dir> is required" >&2; usage; }
bzimage=${bzimage:-$build_dir/arch/x86/boot/bzImage}
[ -f "$bzimage" ] || { echo "run-proof: no bzImage at $bzimage: build the kernel first" >&2; exit 3; }
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(clean clean-merged legacy legacy-merged fail_at leak_objects leak_objects-merged hang_at panic_at)
out=$(realpath -m "${out:-$(mktemp -d /tmp/rust_i915_table-proof.XXXXXX)}")
mkdir -p "$out"
echo "run-proof: output in $out"

# 1. The module, built from a copy (kbuild writes objects next to the sources).
rm -rf "$out/module"
mkdir -p "$out/module"
cp "$module_src"/Kbuild "$module_src"/rust_i915_table.rs "$module_src"/table.rs "$out/module/"
if ! make -C "$build_dir" M="$out/module" LLVM=1 RUSTC=/usr/bin/rustc modules >"$out/module-build.log" 2>&1; then
	tail -40 "$out/module-build.log" >&2
	echo "run-proof: module build failed (log: $out/module-build.log)" >&2
	exit 3
fi
echo "run-proof: built $out/module/rust_i915_table.ko"

# 2. The initramfs: static busybox, init.sh, the module. The kernel's own gen_init_cpio writes the
# /dev/console node into the archive, so no root is needed.
gen_init_cpio=$build_dir/usr/gen_init_cpio
[ -x "$gen_init_cpio" ] || { echo "run-proof: no $gen_init_cpio in the kernel build dir" >&2; exit 3; }
cat >"$out/initramfs.list" <<LIST
dir /bin 0755 0 0
dir /dev 0755 0 0
dir /proc 0755 0 0
dir /sys 0755 0 0
dir /lib 0755 0 0
dir /lib/modules 0755 0 0
nod /dev/console 0600 0 0 c 5 1
file /bin/busybox $(command -v busybox) 0755 0 0
file /init $here/init.sh 0755 0 0
file /lib/modules/rust_i915_table.ko $out/module/rust_i915_table.ko 0644 0 0
LIST
"$gen_init_cpio" "$out/initramfs.list" | gzip -1 >"$out/initramfs.cpio.gz"

# 3. One boot per scenario.
status=0
raise() { [ "$1" -le "$status" ] || status=$1; }
for scenario in "${scenarios[@]}"; do
	cmdline="console=ttyS0 panic=-1 kcycle.scenario=$scenario"
	# Debug flags keep the caches unmerged, so a leaked one makes the next create complain;
	# the *-merged scenarios show the default (caches merged into existing ones).
	case $scenario in *-merged) ;; *) cmdline="$cmdline slub_debug=U,rust_i915_*" ;; esac
	console=$out/$scenario.console
	echo "run-proof: $scenario: booting ($cmdline)"
	started=$(date +%s)
	set +e
	# One vCPU: under multi-threaded TCG a second vCPU can run stale code while the
	# kernel patches a static key at boot (seen once: "Oops: int3" in
	# sched_clock_cpu); the proof needs no SMP.
	timeout --kill-after=10 "$boot_timeout" qemu-system-x86_64 -accel tcg -m 512 -smp 1 \
		-nographic -no-reboot -kernel "$bzimage" -initrd "$out/initramfs.cpio.gz" \
		-append "$cmdline" </dev/null 2>&1 | tr -d '\r' >"$console"
	qemu_status=${PIPESTATUS[0]}
	set -e
	echo "run-proof: $scenario: qemu exited $qemu_status after $(($(date +%s) - started)) s"
	sed -n '/^----- dmesg begin -----$/,/^----- dmesg end -----$/p' "$console" | sed '1d;$d' >"$out/$scenario.dmesg"
	grep '^KCYCLE-CHECK' "$console" | sed 's/^/  /' || true
	if [ "$scenario" = panic_at ]; then
		if grep -q 'Kernel panic - not syncing: rust_i915_table: panic_at=globals' "$console"; then
			echo "  KCYCLE-CHECK panic_at: kernel panicked: ok"
		else
			echo "  KCYCLE-CHECK panic_at: kernel panicked: FAIL"
			raise 1
		fi
		# The panic is on the console only; keep its tail as the "dmesg".
		sed -n '/loading with panic_at/,$p' "$console" >"$out/$scenario.dmesg"
	elif [ "$qemu_status" -ne 0 ] || ! grep -q '^KCYCLE-PROOF-DONE' "$console"; then
		echo "run-proof: $scenario: the guest did not finish (console: $console)" >&2
		tail -30 "$console" >&2
		raise 3
	elif grep -q '^KCYCLE-CHECK.*: FAIL' "$console"; then
		raise 1
	fi
	if [ -n "$fixtures" ]; then
		mkdir -p "$fixtures"
		name=$scenario.dmesg
		[ "$scenario" = panic_at ] && name=$scenario.console
		cp "$out/$scenario.dmesg" "$fixtures/$name"
	fi
done
[ $status -eq 0 ] && echo "run-proof: all checks passed" || echo "run-proof: FAILED (status $status)"
exit $status
