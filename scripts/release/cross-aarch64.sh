#!/usr/bin/env bash
# Cross-builds linq-exporter for aarch64-unknown-linux-gnu on an x86_64 Debian 12 machine and
# proves the binary is a real aarch64 one: `file` says ARM aarch64, its LOAD segments are aligned
# for 64K pages, and it runs under qemu-aarch64-static: `--version` and the
# linq_exporter_build_info of a `--demo --once` sweep name Cargo.toml's version.
#
#   scripts/release/cross-aarch64.sh            # the check CI runs (fast profile, see below)
#   CROSS_PROFILE=release scripts/release/cross-aarch64.sh   # Cargo.toml's release profile exactly
#
# Environment:
#   CROSS_TOOLCHAIN  debian (default): Debian 12's rustc-web/cargo-web with libstd-rust-web-dev:arm64
#                    (installed here, with `dpkg --add-architecture arm64`);
#                    rustup: the rustup toolchain on PATH plus `rustup target add` (the release
#                    workflow, in the rust:*-bookworm image).
#   CROSS_PROFILE    check (default): the release profile with LTO off and 16 codegen units, about
#                    3x faster to build on 2 cores than Cargo.toml's (thin LTO, 4 units); the code
#                    is the same, only less optimised. release: Cargo.toml's release profile.
#   CROSS_OUT        copy the binary here when set (the release workflow's dist/).
#
# jemalloc: JEMALLOC_SYS_WITH_LG_PAGE=16 builds it for pages up to 64 KiB, so the binary runs on
# 4K, 16K (Apple silicon, some Ampere kernels) and 64K-page (RHEL/Oracle arm64) hosts alike; built
# for 4K pages it crashes at start-up on the others.
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGET=aarch64-unknown-linux-gnu
TOOLCHAIN=${CROSS_TOOLCHAIN:-debian}
PROFILE=${CROSS_PROFILE:-check}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_AARCH64:-target/aarch64}

apt_install() { # packages...
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "cross-aarch64: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

common_pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static file binutils-aarch64-linux-gnu)
case "$TOOLCHAIN" in
  debian)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      dpkg --add-architecture arm64
      apt-get update -qq
    fi
    apt_install "${common_pkgs[@]}" rustc-web cargo-web libstd-rust-web-dev:arm64
    # Debian's cargo-web and rustc-web install as /usr/bin/cargo and /usr/bin/rustc; use them
    # explicitly, whatever rustup puts first on PATH.
    CARGO=/usr/bin/cargo
    export RUSTC=/usr/bin/rustc
    ;;
  rustup)
    apt_install "${common_pkgs[@]}"
    rustup target add "$TARGET"
    CARGO=cargo
    ;;
  *) echo "CROSS_TOOLCHAIN must be debian or rustup" >&2; exit 2 ;;
esac
echo "cross-aarch64: $("$CARGO" --version), $(${RUSTC:-rustc} --version)"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export JEMALLOC_SYS_WITH_LG_PAGE=16
if [ "$PROFILE" = check ]; then
  export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
elif [ "$PROFILE" != release ]; then
  echo "CROSS_PROFILE must be check or release" >&2; exit 2
fi

start=$SECONDS
"$CARGO" build --release --locked --target "$TARGET"
echo "cross-aarch64: build ($PROFILE profile) took $((SECONDS - start))s"
BIN=$CARGO_TARGET_DIR/$TARGET/release/linq-exporter

fail=0
desc=$(file -b "$BIN")
echo "file: $desc"
case "$desc" in
  *ELF\ 64-bit*ARM\ aarch64*) echo "ok   file: an ELF 64-bit aarch64 executable" ;;
  *) echo "FAIL file: not an aarch64 ELF binary"; fail=1 ;;
esac
# Every LOAD segment aligned to at least 64 KiB, so the kernel can map it with 64K pages.
aligns=$(readelf -lW "$BIN" | awk '$1 == "LOAD" { print $NF }')
small=""
for a in $aligns; do [ $((a)) -ge 65536 ] || small="$small $a"; done
if [ -n "$aligns" ] && [ -z "$small" ]; then
  echo "ok   LOAD segments aligned for 64K pages"
else
  echo "FAIL LOAD segment alignment below 64K: $small"; fail=1
fi
# The guest's loader and libc must come from one glibc: the cross one in /usr/aarch64-linux-gnu.
# Without LD_LIBRARY_PATH the loader also finds libc6:arm64 (multiarch, pulled in by
# libstd-rust-web-dev:arm64) through the host's ld.so.cache; the two glibc builds mixed hang in
# the first pthread_create.
QEMU="qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib"
if RUNNER="$QEMU" timeout 300 bash scripts/release/check-version.sh "$BIN"; then
  echo "ok   runs under qemu-aarch64-static: --version and --demo --once name Cargo.toml's version"
else
  echo "FAIL under qemu-aarch64-static (see above)"; fail=1
fi
if [ -n "${CROSS_OUT:-}" ]; then
  install -D -m 0755 "$BIN" "$CROSS_OUT"
  echo "cross-aarch64: copied to $CROSS_OUT"
fi
exit "$fail"
