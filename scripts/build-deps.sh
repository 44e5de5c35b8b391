#!/usr/bin/env bash
# What building kcycle itself needs beyond Rust: a C compiler and make (for
# libssh2 and zlib), pkg-config and OpenSSL's headers (openssl-sys). Installs
# them with apt (as root, or with password-less sudo) when missing; never
# removes a package (--no-remove). `kcycle setup` installs the rest.
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if ! pkg-config --exists openssl 2>/dev/null; then
    missing+=(libssl-dev)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

install=(apt-get install -y --no-install-recommends --no-remove "${missing[@]}")
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "kcycle: building kcycle needs ${missing[*]}; run as root:" >&2
    echo "  apt-get update && ${install[*]}" >&2
    exit 1
fi
echo "kcycle: installing what building kcycle needs: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" "${install[@]}" || { "${as_root[@]}" apt-get update && "${as_root[@]}" "${install[@]}"; }
