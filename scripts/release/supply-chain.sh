#!/usr/bin/env bash
# Supply-chain checks that run offline (issue 19), one ok/FAIL line each:
#   1. cargo-deny: licenses, bans and sources of Cargo.lock against deny.toml. (Advisories need the
#      RustSec database on GitHub, which this machine cannot reach; the GitHub workflows run
#      `cargo deny check advisories`.)
#   2. A CycloneDX SBOM from Cargo.lock (scripts/release/sbom.sh), its components = Cargo.lock's.
#   3. The release archive of the x86_64 binary with its checksum, `sha256sum -c` checked
#      (scripts/release/archive.sh), and --version / linq_exporter_build_info name Cargo.toml's
#      version (scripts/release/check-version.sh).
#   4. CHANGELOG.md parses as Keep a Changelog; the tag/version checks of the release workflow fail
#      when they should (scripts/release/notes.py --self-test).
#   5. hadolint on the release image's Dockerfile (scripts/release/Dockerfile), OCI labels required.
#   6. The GitHub workflows: actionlint, zizmor --offline and check-jsonschema
#      (vendor.github-workflows), all with no findings.
#
#   LINQ_EXPORTER_BIN=target/release/linq-exporter scripts/release/supply-chain.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${LINQ_EXPORTER_BIN:-target/release/linq-exporter}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failed=0
step() { # name command...
  local name=$1
  shift
  if "$@" >"$TMP/out" 2>&1; then
    echo "ok   $name"
    sed 's/^/       /' "$TMP/out" | tail -n 8
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    sed 's/^/       /' "$TMP/out" | tail -n 40
  fi
}
step "cargo deny check licenses bans sources" cargo-deny --locked check licenses bans sources
step "CycloneDX SBOM matches Cargo.lock" bash scripts/release/sbom.sh "$TMP/dist/sbom.cdx.json"
if [ -x "$BIN" ]; then
  step "release archive with sha256sum -c" bash scripts/release/archive.sh "$BIN" "$(uname -m)-unknown-linux-gnu" "$TMP/dist"
  step "--version and linq_exporter_build_info name Cargo.toml's version" bash scripts/release/check-version.sh "$BIN"
else
  failed=$((failed + 1))
  echo "FAIL release binary $BIN not found (CI builds it first)"
fi
labels=()
for l in title description source url documentation licenses version revision; do
  labels+=(--require-label "org.opencontainers.image.$l")
done
printf 'ignored: []\n' >"$TMP/hadolint.yaml"
step "hadolint scripts/release/Dockerfile (style and up, OCI labels)" \
  hadolint --config "$TMP/hadolint.yaml" --no-color --failure-threshold style --strict-labels "${labels[@]}" scripts/release/Dockerfile
step "CHANGELOG.md and the release tag checks" python3 scripts/release/notes.py --self-test
step "actionlint .github/workflows/*.yml" actionlint -color=false
step "zizmor --offline .github/workflows" zizmor --offline --no-progress --color never .github/workflows
step "check-jsonschema vendor.github-workflows" check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
echo "supply chain: $failed failed"
[ "$failed" -eq 0 ]
