#!/usr/bin/env bash
# Print the cache key of kcycle's guest kernel and image: a hash of what goes
# into them that can be seen before building — kcycle's config fragments,
# patches, Rust module and image recipe, the kernel source's identity and the
# toolchain versions. kcycle's own cache (~/.cache/kcycle) keys each entry
# exactly; this key only decides which cache archive CI restores and saves.
#
# usage: kernel-cache-key.sh KCYCLE_ROOT [KERNEL_SOURCE_TREE]
set -euo pipefail

root=${1:?usage: kernel-cache-key.sh KCYCLE_ROOT [KERNEL_SOURCE_TREE]}
source=${2:-}
if [ -n "$source" ]; then
    source=$(cd "$source" && pwd)
fi

identity() {
    (cd "$root" && find guest-kernel images -type f \
        ! -path '*/target/*' ! -name '*.o' ! -name '*.ko' -print0 |
        sort -z | xargs -0 sha256sum)
    if [ -z "$source" ]; then
        dpkg-query --showformat='linux-source-6.12 ${Version}\n' --show linux-source-6.12 2>/dev/null ||
            echo "linux-source-6.12 not installed"
    elif head=$(git -C "$source" rev-parse HEAD 2>/dev/null); then
        echo "tree $head"
        git -C "$source" status --porcelain=v1 --untracked-files=no | sha256sum
    else
        echo "tree $(head -n 6 "$source/Makefile" | sha256sum)"
    fi
    dpkg-query --showformat='${Package} ${Version}\n' --show rustc-web clang lld 2>/dev/null || true
}

echo "kcycle-kernel-$(identity | sha256sum | cut -c1-32)"
