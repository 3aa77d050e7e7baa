#!/usr/bin/env bash
# The release binary's `--version` and its `linq_exporter_build_info{version}` both name VERSION
# (default: Cargo.toml's), so the tag, the binary, its metrics and the image label agree.
#
#   scripts/release/check-version.sh BINARY [VERSION]
# Runs BINARY directly, or through RUNNER (e.g. RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu").
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:?binary}
version=${2:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)}
read -r -a runner <<<"${RUNNER:-}"
fail=0
out=$("${runner[@]}" "$BIN" --version 2>&1) || true
if printf '%s\n' "$out" | grep -qE "(^|[^0-9.])${version//./\\.}([^0-9.]|$)"; then
  echo "ok   --version: $out"
else
  echo "FAIL --version does not name $version: $out"; fail=1
fi
info=$(timeout 60 "${runner[@]}" "$BIN" --demo --once 2>/dev/null | grep '^linq_exporter_build_info{' || true)
if printf '%s' "$info" | grep -q "version=\"$version\""; then
  echo "ok   $info"
else
  echo "FAIL linq_exporter_build_info does not carry version=\"$version\": ${info:-<none>}"; fail=1
fi
exit "$fail"
