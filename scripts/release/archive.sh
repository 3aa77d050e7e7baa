#!/usr/bin/env bash
# Packs a release archive and its checksum, then verifies both:
#   dist/linq-exporter-VERSION-TARGET.tar.gz  linq-exporter-VERSION-TARGET/{linq-exporter,README.md,LICENSE,CHANGELOG.md}
#   dist/linq-exporter-VERSION-TARGET.tar.gz.sha256  (sha256sum format)
#
#   scripts/release/archive.sh BINARY TARGET [DIST]     # e.g. target/release/linq-exporter x86_64-unknown-linux-gnu
#
# Checks: `sha256sum -c` passes (and fails on a corrupted copy), the archive holds exactly those
# four files, the binary in it is byte-identical to BINARY and, when it is for this machine's
# architecture, `--version` names Cargo.toml's version.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:?binary}
TARGET=${2:?target triple}
DIST=${3:-dist}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
name=linq-exporter-$version-$TARGET
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/$name" "$DIST"
DIST=$(cd "$DIST" && pwd)
install -m 0755 "$BIN" "$TMP/$name/linq-exporter"
install -m 0644 README.md LICENSE CHANGELOG.md "$TMP/$name/"
# Reproducible: fixed order, owner and mtime (the commit's time when in git).
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -C "$TMP" -cf - "$name" \
  | gzip -n -9 >"$DIST/$name.tar.gz"
(cd "$DIST" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")

fail=0
if (cd "$DIST" && sha256sum -c "$name.tar.gz.sha256"); then
  echo "ok   sha256sum -c $name.tar.gz.sha256"
else
  echo "FAIL sha256sum -c $name.tar.gz.sha256"; fail=1
fi
# The check must be able to fail: a one-byte change is caught.
cp "$DIST/$name.tar.gz" "$TMP/corrupt.tar.gz"
printf 'x' >>"$TMP/corrupt.tar.gz"
sed "s/$name.tar.gz/corrupt.tar.gz/" "$DIST/$name.tar.gz.sha256" >"$TMP/corrupt.sha256"
if ! grep -q corrupt.tar.gz "$TMP/corrupt.sha256"; then
  echo "FAIL could not make the corrupted copy's checksum line"; fail=1
elif (cd "$TMP" && sha256sum -c --quiet corrupt.sha256 >/dev/null 2>&1); then
  echo "FAIL sha256sum -c accepted a corrupted archive"; fail=1
else
  echo "ok   sha256sum -c refuses a corrupted archive"
fi
listing=$(tar -tzf "$DIST/$name.tar.gz" | sort | paste -sd' ')
want="$name/ $name/CHANGELOG.md $name/LICENSE $name/README.md $name/linq-exporter"
if [ "$listing" = "$want" ]; then
  echo "ok   archive holds the binary, README.md, LICENSE and CHANGELOG.md"
else
  echo "FAIL archive contents: $listing (want $want)"; fail=1
fi
mkdir "$TMP/x"
tar -xzf "$DIST/$name.tar.gz" -C "$TMP/x"
if cmp -s "$BIN" "$TMP/x/$name/linq-exporter"; then
  echo "ok   the archived binary is $BIN"
else
  echo "FAIL the archived binary differs from $BIN"; fail=1
fi
case "$TARGET" in
  "$(uname -m)"-*)
    out=$("$TMP/x/$name/linq-exporter" --version 2>&1 || true)
    if printf '%s' "$out" | grep -qw -- "$version"; then
      echo "ok   the archived binary's --version names $version ($out)"
    else
      echo "FAIL the archived binary's --version: $out"; fail=1
    fi
    ;;
esac
exit "$fail"
