#!/bin/busybox sh
# /init of the proof initramfs: runs one scenario (kernel command line `kcycle.scenario=<name>`)
# against rust_i915_table.ko, prints `KCYCLE-CHECK <what>: ok|FAIL ...` lines, then the whole
# dmesg between markers, and powers off. run-proof.sh boots once per scenario and reads this.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug

KO=/lib/modules/rust_i915_table.ko
PARAMS=/sys/module/rust_i915_table/parameters
FAILED=0

check() { # check <what> <command...>: runs the command, reports ok or FAIL
	what=$1
	shift
	if "$@"; then echo "KCYCLE-CHECK $what: ok"; else echo "KCYCLE-CHECK $what: FAIL"; FAILED=1; fi
}

# Everything rust_i915_table can leave behind, one line each; empty output means nothing.
leftovers() {
	for entry in /sys/kernel/slab/rust_i915_*; do
		[ -e "$entry" ] || continue
		# A merged cache is a symlink to the cache it shares (e.g. :0000096).
		if [ -L "$entry" ]; then echo "slab sysfs: ${entry##*/} -> $(readlink "$entry")"; else echo "slab sysfs: ${entry##*/}"; fi
	done
	grep '^rust_i915_' /proc/slabinfo | cut -d' ' -f1 | sed 's/^/slabinfo: /'
	[ -e /sys/kernel/debug/rust_i915_table ] && echo "debugfs: /sys/kernel/debug/rust_i915_table"
	[ -e /proc/sys/dev/rust_i915 ] && echo "sysctl: /proc/sys/dev/rust_i915"
	[ -e /sys/bus/pci/drivers/rust_i915_table ] && echo "pci driver: rust_i915_table"
	grep '^rust_i915_table ' /proc/modules | sed 's/^/module: /'
	true
}

# With merged caches (the *-merged scenarios, no slub_debug), kmem_cache_destroy() of an alias
# only drops the target's refcount and 6.12 never removes the alias symlink: a stale
# /sys/kernel/slab/rust_i915_* -> :0000128 link is no leak there. What does tell is the target's
# `aliases` count (see merged_refs), so those links are left out here.
nothing_left() {
	case $scenario in
	*-merged) left=$(leftovers | grep -v '^slab sysfs: .* -> ') ;;
	*) left=$(leftovers) ;;
	esac
	[ -z "$left" ] || { echo "$left" | sed 's/^/  left behind: /'; return 1; }
}

# Sum of the `aliases` counts of the caches rust_i915_* are merged into: one per live alias.
merged_refs() {
	total=0
	for entry in /sys/kernel/slab/rust_i915_*; do
		[ -L "$entry" ] && total=$((total + $(cat "$entry/aliases")))
	done
	echo $total
}

caches_present() { [ "$(ls /sys/kernel/slab | grep -c '^rust_i915_')" -ge 5 ]; }
dmesg_has() { dmesg | grep -q -- "$1"; }
dmesg_lacks() { ! dmesg | grep -E -- "$1"; }
param_is() { [ "$(cat $PARAMS/$1)" = "$2" ] || { echo "  $1 = $(cat $PARAMS/$1), expected $2"; return 1; }; }
load() { insmod $KO "$@"; }
unload() { rmmod rust_i915_table; }

scenario=$(sed -n 's/.*kcycle\.scenario=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "KCYCLE-PROOF scenario=$scenario kernel=$(uname -r)"
# Keep the console for this script (the full dmesg is printed at the end), except when the
# kernel is about to panic and the console is all there will be.
[ "$scenario" = panic_at ] || dmesg -n 1

case "$scenario" in
clean | clean-merged)
	for round in 1 2 3; do
		check "round $round: load" load
		check "round $round: caches, debugfs dir, sysctl present" sh -c \
			'[ "$(ls /sys/kernel/slab | grep -c ^rust_i915_)" -ge 5 ] && [ -d /sys/kernel/debug/rust_i915_table ] && [ -f /proc/sys/dev/rust_i915/perf_stream_paranoid ]'
		refs_loaded=$(merged_refs)
		check "round $round: unload" unload
		check "round $round: nothing left after unload" nothing_left
		if [ "$scenario" = clean-merged ]; then
			check "round $round: merged caches lost our 5 aliases on unload" \
				test "$(merged_refs)" -eq $((refs_loaded - 5))
		fi
	done
	check "mock_selftests=-1: load" load mock_selftests=-1
	check "mock_selftests=-1: result 0 written back" param_is mock_selftests 0
	check "mock_selftests=-1: no pci driver (init ended early)" sh -c '! [ -e /sys/bus/pci/drivers/rust_i915_table ]'
	check "mock_selftests=-1: unload" unload
	check "mock_selftests=-1: nothing left" nothing_left
	check "mock_selftests=-1: reload" load mock_selftests=-1
	check "mock_selftests=-1: unload again" unload
	check "st_fail: load mock_selftests=-1 st_fail=rust_i915_vma" load mock_selftests=-1 st_fail=rust_i915_vma
	check "st_fail: result -22 written back" param_is mock_selftests -22
	check "st_fail: failure line in i915's format" dmesg_has "rust_i915_table/mock: rust_i915_vma failed with error -22"
	check "st_fail: unload" unload
	check "st_fail: nothing left" nothing_left
	check "modeset=0: load" load modeset=0
	check "modeset=0: ended early before globals" sh -c '! [ -e /sys/kernel/debug/rust_i915_table ]'
	check "modeset=0: unload" unload
	check "modeset=0: nothing left" nothing_left
	# QEMU's std VGA (1234:1111, class 0300) is not Intel: bind it through new_id to see probe/remove.
	check "pci: load" load
	echo "1234 1111" >/sys/bus/pci/drivers/rust_i915_table/new_id
	check "pci: probe logged" dmesg_has "rust_i915_table 0000:00:[0-9a-f.]*: probe \[1234:1111\] class 030000"
	check "pci: unload" unload
	check "pci: remove logged" dmesg_has "rust_i915_table 0000:00:[0-9a-f.]*: remove \[1234:1111\]"
	check "pci: nothing left" nothing_left
	check "no duplicate/leak warnings" dmesg_lacks "already present|duplicate|still has objects|WARNING|BUG|Oops|Call Trace"
	;;
legacy | legacy-merged)
	# legacy: booted with slub_debug=U,rust_i915_* (caches not merged); legacy-merged: without.
	check "legacy: load legacy_exit=1 mock_selftests=-1" load legacy_exit=1 mock_selftests=-1
	check "legacy: result 0 written back" param_is mock_selftests 0
	check "legacy: legacy_exit reads Y" param_is legacy_exit Y
	check "legacy: unset fail_at reads (null)" param_is fail_at "(null)"
	grep -H . $PARAMS/* | sed 's|^.*/parameters/|  param |'
	refs_loaded=$(merged_refs)
	check "legacy: unload" unload
	echo "after the first unload:"
	leftovers | sed 's/^/  /'
	check "legacy: caches leaked after unload" caches_present
	if [ "$scenario" = legacy-merged ]; then
		check "legacy: merged caches keep our 5 aliases after unload" \
			test "$(merged_refs)" -eq "$refs_loaded"
	fi
	check "legacy: debugfs dir leaked after unload" test -d /sys/kernel/debug/rust_i915_table
	if load legacy_exit=1 mock_selftests=-1; then
		echo "second load: succeeded"
		echo "mock_selftests after second load: $(cat $PARAMS/mock_selftests)"
		unload
	else
		echo "second load: failed"
	fi
	check "legacy: next load warns debugfs dir already present" \
		dmesg_has "debugfs: Directory 'rust_i915_table' with parent '/' already present!"
	if [ "$scenario" = legacy ]; then
		# 6.12 with SLAB_STORE_USER: the new cache silently replaces the old one's sysfs entry
		# (sysfs_slab_add removes any node of that name first), but its debugfs dir collides.
		check "legacy: next load warns slab debugfs dirs already present" \
			dmesg_has "debugfs: Directory 'rust_i915_active' with parent 'slab' already present!"
		check "legacy: slabinfo holds both generations of each cache" \
			sh -c '[ "$(grep -c ^rust_i915_ /proc/slabinfo)" -eq 10 ]'
	fi
	echo "after the second load and unload:"
	leftovers | sed 's/^/  /'
	;;
fail_at)
	for step in nomodeset globals mock_selftests pci sysctl; do
		extra=
		[ "$step" = mock_selftests ] && extra=mock_selftests=-1
		check "fail_at=$step: load fails" sh -c "! insmod $KO fail_at=$step $extra"
		check "fail_at=$step: nothing left" nothing_left
		check "fail_at=$step: -ENOMEM logged" dmesg_has "$step: fail_at: failing with -ENOMEM"
	done
	check "fail_at=bogus: load rejected" sh -c "! insmod $KO fail_at=bogus"
	check "fail_at=bogus: named in dmesg" dmesg_has "fail_at=bogus: no such step"
	check "fail_at: clean load afterwards" load
	check "fail_at: clean unload afterwards" unload
	check "fail_at: nothing left at the end" nothing_left
	check "fail_at: no duplicate/leak warnings" dmesg_lacks "already present|duplicate|still has objects|WARNING|BUG|Oops|Call Trace"
	;;
leak_objects | leak_objects-merged)
	check "leak_objects: load mock_selftests=-1 leak_objects=1" load mock_selftests=-1 leak_objects=1
	check "leak_objects: unload" unload
	if [ "$scenario" = leak_objects ]; then
		check "leak_objects: still has objects reported" dmesg_has "Slab cache still has objects"
		check "leak_objects: slub names the leftover objects" dmesg_has "Objects remaining on __kmem_cache_shutdown()"
	else
		# Merged: destroying an alias only drops the shared cache's refcount, so 6.12 says nothing.
		check "leak_objects: merged caches hide the leak from dmesg" dmesg_lacks "still has objects|Objects remaining"
	fi
	echo "after unload:"
	leftovers | sed 's/^/  /'
	check "leak_objects: reload" load
	check "leak_objects: unload again" unload
	;;
hang_at)
	for step in globals pci; do
		insmod $KO hang_at=$step &
		pid=$!
		n=0
		while ! dmesg | grep -q "$step: hang_at: waiting" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
		check "hang_at=$step: blocked in init" sh -c "kill -0 $pid"
		kill -TERM $pid
		wait $pid
		echo "hang_at=$step: insmod exit status $?"
		check "hang_at=$step: -EINTR after the signal" dmesg_has "$step: hang_at: signal received, failing with -EINTR"
		check "hang_at=$step: nothing left" nothing_left
	done
	;;
panic_at)
	echo "loading with panic_at=globals: the kernel panics now"
	insmod $KO panic_at=globals
	echo "KCYCLE-CHECK panic_at: FAIL (still running)"
	;;
*)
	echo "KCYCLE-CHECK scenario: FAIL (unknown scenario '$scenario')"
	FAILED=1
	;;
esac

echo "----- dmesg begin -----"
dmesg
echo "----- dmesg end -----"
echo "KCYCLE-PROOF-DONE failed=$FAILED"
poweroff -f
