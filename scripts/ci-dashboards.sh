#!/usr/bin/env bash
# Tests for the dashboards, alert rules and recording rules of linq-exporter.
#
#   scripts/ci-dashboards.sh
#
# 1. promtool check rules / promtool test rules over deploy/prometheus/
# 2. structural check of dashboards/ (scripts/dashboards/check.py static)
# 3. promtool check metrics over the exporter's real exposition (--demo --once, and a live scrape)
# 4. every metric name a query uses is one the exporter exports
# 5. end-to-end: linq-exporter --demo (with fault injection) + a real Prometheus scraping it every
#    second with the rules loaded; every PromQL expression of both dashboards, the alert rules, the
#    recording rules and the Grafana-managed alert rules must return data. A second exporter (job
#    linq-exporter-reputation) reads `linq-exporter simulate --numbers 24`, whose 24th number has a
#    CRITICAL line reputation from the start (the 3-number demo shows none for ~20 minutes), so
#    LinqLineReputationCritical and the reputation panels see a CRITICAL line
# 6. native histograms: a second Prometheus with --enable-feature=native-histograms scrapes the
#    same exporter (protobuf); the latency histograms must be stored as native histograms and every
#    query and alert over them (and over the health-score histogram, whose le values it spells
#    "10.0") must still return data (scripts/dashboards/check.py native)
#
# The exporter binary comes from LINQ_EXPORTER_BIN (default target/release/linq-exporter); this
# script never builds it. Installs promtool/prometheus (Debian package) and PyYAML if missing.
# Exits non-zero on any failure; the last line is "dashboards: N passed, M failed".
#
# Environment:
#   LINQ_EXPORTER_BIN              exporter binary (default target/release/linq-exporter)
#   LINQ_DASHBOARDS_E2E_TIMEOUT    seconds to wait for every query to return data (default 240)
#   LINQ_DASHBOARDS_KEEP_TMP=1     keep the temporary directory (logs, Prometheus data) for debugging

set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BIN=${LINQ_EXPORTER_BIN:-target/release/linq-exporter}
E2E_TIMEOUT=${LINQ_DASHBOARDS_E2E_TIMEOUT:-240}
PY=python3

PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
section() { echo; echo "# --- $*"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/linq-dashboards.XXXXXX")
COUNTS=$TMP/counts
: >"$COUNTS"
EXPORTER_PID=
PROMETHEUS_PID=
NATIVE_PID=
CHECK_PID=
SIM_PID=
REPUTATION_PID=

# Stop a process we started: TERM, wait up to 10 s, then KILL. Never by name.
stop_pid() {
    local pid=$1 _
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    stop_pid "$CHECK_PID"
    stop_pid "$PROMETHEUS_PID"
    stop_pid "$NATIVE_PID"
    stop_pid "$REPUTATION_PID"
    stop_pid "$SIM_PID"
    stop_pid "$EXPORTER_PID"
    if [ "${LINQ_DASHBOARDS_KEEP_TMP:-0}" = 1 ]; then
        echo "# kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run scripts/dashboards/check.py in the background and wait for it, so that a signal interrupts
# the wait at once (and cleanup stops it) instead of waiting for a long check to finish.
# A check that exits non-zero without having counted a failure (it crashed) counts as one.
run_check() {
    local rc before after
    before=$(wc -l <"$COUNTS")
    "$PY" scripts/dashboards/check.py --counts "$COUNTS" "$@" &
    CHECK_PID=$!
    wait "$CHECK_PID"
    rc=$?
    CHECK_PID=
    after=$(wc -l <"$COUNTS")
    if [ "$rc" -ne 0 ] && { [ "$after" -eq "$before" ] || [ "$(tail -1 "$COUNTS" | cut -d' ' -f2)" -eq 0 ]; }; then
        fail "scripts/dashboards/check.py $1 exited with status $rc"
    fi
}

# Add the counts the python checks appended to $COUNTS.
collect_counts() {
    local p f
    while read -r p f; do
        PASSED=$((PASSED + p))
        FAILED=$((FAILED + f))
    done <"$COUNTS"
    : >"$COUNTS"
}

finish() {
    collect_counts
    echo
    echo "dashboards: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit $?
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Poll a URL until it answers 200, at most $2 seconds; fail early if pid $3 died.
wait_http() {
    local url=$1 timeout=$2 pid=$3 deadline
    deadline=$((SECONDS + timeout))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        if "$PY" - "$url" <<'EOF' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# promtool check metrics over an exposition file: strict, any finding fails. (Until issue 18,
# linq_chats_by_health_score was a gauge with an "le" label and its one finding was accepted; it is
# now a histogram, so there is nothing left to accept.)
lint_exposition() {
    local file=$1 what=$2 out rc
    out=$(promtool check metrics <"$file" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$(printf '%s' "$out" | tr -d '[:space:]')" ]; then
        ok "promtool check metrics: $what has no lint findings"
    else
        printf '%s\n' "$out" | head -40
        fail "promtool check metrics: $what has no lint findings (exit status $rc)"
    fi
}

# ------------------------------------------------------------------------------------------------
section "tools"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    echo "# installing Debian's prometheus package (promtool, prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q prometheus >"$TMP/apt.log" 2>&1; then
        apt-get update -q >>"$TMP/apt.log" 2>&1
        apt-get install -y -q prometheus >>"$TMP/apt.log" 2>&1 || { tail -20 "$TMP/apt.log"; }
    fi
fi
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    ok "promtool and prometheus available ($(prometheus --version 2>&1 | head -1))"
else
    fail "promtool and prometheus available (apt-get install prometheus failed)"
    finish
fi
if ! "$PY" -c 'import yaml' 2>/dev/null; then
    echo "# installing PyYAML"
    "$PY" -m pip install -q pyyaml >"$TMP/pip.log" 2>&1 ||
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-yaml >>"$TMP/pip.log" 2>&1 && PY=/usr/bin/python3; }
fi
if "$PY" -c 'import yaml' 2>/dev/null; then
    ok "python3 with PyYAML available"
else
    fail "python3 with PyYAML available"
    finish
fi

# ------------------------------------------------------------------------------------------------
section "promtool check rules / test rules"
if out=$(promtool check rules deploy/prometheus/alerts.yaml deploy/prometheus/recording-rules.yaml 2>&1); then
    ok "promtool check rules deploy/prometheus/*.yaml"
else
    echo "$out"
    fail "promtool check rules deploy/prometheus/*.yaml"
fi
if out=$(cd deploy/prometheus && promtool test rules tests/*.yaml 2>&1); then
    ok "promtool test rules deploy/prometheus/tests/*.yaml"
else
    echo "$out"
    fail "promtool test rules deploy/prometheus/tests/*.yaml"
fi

# ------------------------------------------------------------------------------------------------
section "structure of dashboards, rules and provisioning"
run_check static
collect_counts

# ------------------------------------------------------------------------------------------------
section "the exporter's real exposition"
if [ ! -x "$BIN" ]; then
    fail "exporter binary $BIN exists (build it first: cargo build --release; or set LINQ_EXPORTER_BIN)"
    finish
fi
ok "exporter binary $BIN exists"

# One sweep of the demo without injected faults, so it succeeds: the exposition --once prints.
if timeout 120 "$BIN" --demo --once --demo.error-rate 0 --demo.rate-limit-rate 0 \
    --demo.slow-rate 0 --log.level warn >"$TMP/once.prom" 2>"$TMP/once.err"; then
    ok "$BIN --demo --once exits 0 ($(wc -l <"$TMP/once.prom") lines of exposition)"
else
    tail -20 "$TMP/once.err"
    fail "$BIN --demo --once exits 0"
fi
lint_exposition "$TMP/once.prom" "--demo --once exposition"

# ------------------------------------------------------------------------------------------------
section "end-to-end: exporter --demo + Prometheus"
# Fault injection so that every error panel has data: 500s and 429s (retried), slow pages that
# outlast the request timeout (timeout errors, retried), malformed pages (decode errors, failed
# sweeps), 401s (unauthorized, failed sweeps); sweeps that overrun the 2 s poll interval fail
# with a timeout too.
start_exporter() {
    "$BIN" --demo \
        --web.listen-address "127.0.0.1:$EXPORTER_PORT" \
        --linq.poll-interval 2s \
        --linq.retry-backoff 100ms \
        --linq.request-timeout 250ms \
        --demo.chats 1500 \
        --demo.error-rate 0.05 \
        --demo.rate-limit-rate 0.02 \
        --demo.slow-rate 0.05 \
        --demo.malformed-rate 0.01 \
        --demo.unauthorized-rate 0.01 \
        --log.level error \
        >"$TMP/exporter.log" 2>&1 &
    EXPORTER_PID=$!
}
# The reputation exporter: the simulated Linq API on its own, and an exporter reading it (no faults).
start_simulator() {
    "$BIN" simulate --listen "127.0.0.1:$SIM_PORT" --numbers 24 --chats 240 \
        >"$TMP/simulate.log" 2>&1 &
    SIM_PID=$!
}
start_reputation_exporter() {
    LINQ_API_V3_API_KEY=demo-key-not-secret "$BIN" \
        --web.listen-address "127.0.0.1:$REPUTATION_PORT" \
        --linq.base-url "http://127.0.0.1:$SIM_PORT" \
        --linq.poll-interval 2s \
        --log.level error \
        >"$TMP/reputation-exporter.log" 2>&1 &
    REPUTATION_PID=$!
}
# Wait (at most $2 seconds) until pid $1 logs "url=" to $3 (the simulator is listening);
# 2 if it exited.
wait_simulator() {
    local pid=$1 timeout=$2 log=$3 deadline
    deadline=$((SECONDS + timeout))
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || return 2
        grep -q '^url=' "$log" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
start_prometheus() {
    rm -rf "$TMP/prometheus-data"
    mkdir -p "$TMP/prometheus-data"
    prometheus \
        --config.file "$TMP/prometheus.yml" \
        --storage.tsdb.path "$TMP/prometheus-data" \
        --web.listen-address "127.0.0.1:$PROM_PORT" \
        --log.level warn \
        >"$TMP/prometheus.log" 2>&1 &
    PROMETHEUS_PID=$!
}

# A free port can be taken between picking it and binding it: up to 3 tries each.
started=1
for attempt in 1 2 3; do
    EXPORTER_PORT=$(free_port)
    start_exporter
    wait_http "http://127.0.0.1:$EXPORTER_PORT/healthz" 30 "$EXPORTER_PID"
    started=$?
    [ "$started" -eq 2 ] || break # 2: the process exited (e.g. the port was taken)
    echo "# exporter exited on attempt $attempt: $(tail -1 "$TMP/exporter.log")"
    wait "$EXPORTER_PID" 2>/dev/null
    EXPORTER_PID=
done
if [ "$started" -eq 0 ]; then
    ok "exporter (pid $EXPORTER_PID) answers on 127.0.0.1:$EXPORTER_PORT"
else
    tail -20 "$TMP/exporter.log"
    fail "exporter answers on 127.0.0.1:$EXPORTER_PORT within 30s"
    finish
fi

for attempt in 1 2 3; do
    SIM_PORT=$(free_port)
    start_simulator
    wait_simulator "$SIM_PID" 30 "$TMP/simulate.log"
    started=$?
    [ "$started" -eq 2 ] || break
    echo "# simulator exited on attempt $attempt: $(tail -1 "$TMP/simulate.log")"
    wait "$SIM_PID" 2>/dev/null
    SIM_PID=
done
if [ "$started" -eq 0 ]; then
    for attempt in 1 2 3; do
        REPUTATION_PORT=$(free_port)
        start_reputation_exporter
        wait_http "http://127.0.0.1:$REPUTATION_PORT/healthz" 30 "$REPUTATION_PID"
        started=$?
        [ "$started" -eq 2 ] || break
        echo "# reputation exporter exited on attempt $attempt: $(tail -1 "$TMP/reputation-exporter.log")"
        wait "$REPUTATION_PID" 2>/dev/null
        REPUTATION_PID=
    done
fi
if [ "$started" -eq 0 ]; then
    ok "simulator (pid $SIM_PID, --numbers 24) and an exporter reading it (pid $REPUTATION_PID) on 127.0.0.1:$REPUTATION_PORT"
else
    tail -20 "$TMP/simulate.log" "$TMP/reputation-exporter.log" 2>/dev/null
    fail "simulator and the exporter reading it answer within 30s"
    finish
fi

for attempt in 1 2 3; do
    PROM_PORT=$(free_port)
    cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yaml
  - $ROOT/deploy/prometheus/recording-rules.yaml
scrape_configs:
  - job_name: linq-exporter
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER_PORT"]
  - job_name: linq-exporter-reputation
    static_configs:
      - targets: ["127.0.0.1:$REPUTATION_PORT"]
EOF
    if [ "$attempt" -eq 1 ]; then
        if out=$(promtool check config "$TMP/prometheus.yml" 2>&1); then
            ok "promtool check config (test Prometheus config with the rule files)"
        else
            echo "$out"
            fail "promtool check config (test Prometheus config with the rule files)"
        fi
    fi
    start_prometheus
    wait_http "http://127.0.0.1:$PROM_PORT/-/ready" 60 "$PROMETHEUS_PID"
    started=$?
    [ "$started" -eq 2 ] || break
    echo "# prometheus exited on attempt $attempt: $(tail -1 "$TMP/prometheus.log")"
    wait "$PROMETHEUS_PID" 2>/dev/null
    PROMETHEUS_PID=
done
if [ "$started" -eq 0 ]; then
    ok "prometheus (pid $PROMETHEUS_PID) ready on 127.0.0.1:$PROM_PORT"
else
    tail -20 "$TMP/prometheus.log"
    fail "prometheus ready on 127.0.0.1:$PROM_PORT within 60s"
    finish
fi

run_check e2e --prometheus "http://127.0.0.1:$PROM_PORT" --timeout "$E2E_TIMEOUT"
collect_counts

# ------------------------------------------------------------------------------------------------
section "native histograms: a second Prometheus ingesting them"
# Prometheus 2 with native histograms on asks for protobuf and stores a histogram that carries
# native buckets as a native histogram only (no _bucket/_sum/_count series).
started=1
for attempt in 1 2 3; do
    NATIVE_PORT=$(free_port)
    cat >"$TMP/prometheus-native.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: linq-exporter
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER_PORT"]
EOF
    rm -rf "$TMP/prometheus-native-data"
    mkdir -p "$TMP/prometheus-native-data"
    prometheus \
        --enable-feature=native-histograms \
        --config.file "$TMP/prometheus-native.yml" \
        --storage.tsdb.path "$TMP/prometheus-native-data" \
        --web.listen-address "127.0.0.1:$NATIVE_PORT" \
        --log.level warn \
        >"$TMP/prometheus-native.log" 2>&1 &
    NATIVE_PID=$!
    wait_http "http://127.0.0.1:$NATIVE_PORT/-/ready" 60 "$NATIVE_PID"
    started=$?
    [ "$started" -eq 2 ] || break
    echo "# native prometheus exited on attempt $attempt: $(tail -1 "$TMP/prometheus-native.log")"
    wait "$NATIVE_PID" 2>/dev/null
    NATIVE_PID=
done
if [ "$started" -eq 0 ]; then
    ok "prometheus with native histograms (pid $NATIVE_PID) ready on 127.0.0.1:$NATIVE_PORT"
    run_check native --prometheus "http://127.0.0.1:$NATIVE_PORT" --timeout 120
    collect_counts
else
    tail -20 "$TMP/prometheus-native.log"
    fail "prometheus with native histograms ready on 127.0.0.1:$NATIVE_PORT within 60s"
fi
stop_pid "$NATIVE_PID"
NATIVE_PID=

# The live exposition under fault injection has the error counters the clean --once run lacks.
if "$PY" - "http://127.0.0.1:$EXPORTER_PORT/metrics" >"$TMP/live.prom" <<'EOF'; then
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    sys.stdout.write(r.read().decode())
EOF
    ok "scraped the live exposition ($(wc -l <"$TMP/live.prom") lines)"
else
    fail "scraped the live exposition"
fi
lint_exposition "$TMP/live.prom" "live exposition (with errors)"

section "metric names used by queries"
run_check names "$TMP/once.prom" "$TMP/live.prom"
collect_counts

if ! kill -0 "$EXPORTER_PID" 2>/dev/null; then
    tail -20 "$TMP/exporter.log"
    fail "exporter still running at the end"
fi
if ! kill -0 "$REPUTATION_PID" 2>/dev/null; then
    tail -20 "$TMP/reputation-exporter.log"
    fail "reputation exporter still running at the end"
fi
if ! kill -0 "$PROMETHEUS_PID" 2>/dev/null; then
    tail -20 "$TMP/prometheus.log"
    fail "prometheus still running at the end"
fi

finish
