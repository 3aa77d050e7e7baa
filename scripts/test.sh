#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 checkout: installs what it needs, then runs the
# Rust tests, the release build, the official SDK check, the dashboard/alert checks through a real Prometheus, the
# container and Kubernetes checks, the benchmark in smoke mode and the status-page browser test.
# Every suite runs even when an earlier one fails; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || { echo "install-deps failed"; exit 1; }

passed=0
failed=0
failures=()
suite() {
  local name=$1
  shift
  echo
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: ok ($((SECONDS - start))s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED ($((SECONDS - start))s)"
  fi
}

suite "rust tests" cargo test --locked
suite "webhook signature vectors (standardwebhooks, hmac)" python3 scripts/webhook-vectors.py --check
suite "release build" cargo build --release --locked
export LINQ_EXPORTER_BIN="$PWD/target/release/linq-exporter"
suite "official SDK (linq-python): chats and webhooks" python3 scripts/sdk-check.py
suite "dashboards and alerts" bash scripts/ci-dashboards.sh
suite "exposition formats (promtool, OpenMetrics parser, native histograms, exemplars)" python3 scripts/exposition-check.py
suite "container and kubernetes" bash scripts/ci-deploy.sh
# The basic-auth flood (tests/basic_auth_flood.rs) runs with the Rust tests above.
suite "helm chart (lint, render, validate, kustomize parity)" python3 scripts/release/check-chart.py
suite "supply chain (cargo-deny, SBOM, archive, workflows)" bash scripts/release/supply-chain.sh
suite "aarch64 cross build, run under qemu" bash scripts/release/cross-aarch64.sh
[ -f bench/run.sh ] && suite "benchmark (smoke)" bash bench/run.sh --smoke
suite "scale-out: one exporter and 4 shards over one account (smoke)" bash bench/scale-out.sh --smoke
[ -f scripts/browser-test.sh ] && suite "status page in chromium" bash scripts/browser-test.sh
# The fuzz target is not built with its instrumentation here (10 minutes); this keeps it compiling.
[ -f scripts/fuzz.sh ] && suite "fuzz target compiles" bash scripts/fuzz.sh --check
suite "docs links and flag table" python3 scripts/check-docs.py
suite "no import cycles (modules, directories)" python3 scripts/check-layout.py
suite "docs check self-test" python3 scripts/check-docs.py --self-test

echo
if [ "$failed" -gt 0 ]; then
  echo "failed suites: ${failures[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
