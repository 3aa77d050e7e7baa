#!/usr/bin/env bash
# Soak test: the exporter in --demo mode at a 1 s poll interval with fault injection on, 8
# concurrent scrapers (gzip and plain, keep-alive and new connections) for DURATION seconds.
#
#   scripts/soak.sh [DURATION_SECONDS]     default 60
#
# Reports RSS after the warm-up (30 s, or 10% of longer runs) and at the end, its growth, trend
# and maximum, open fds and threads, total scrapes, latency percentiles, every scrape slower than
# 100 ms (count and the slowest, each with the machine's load and whether the soak process itself
# was stalled then: on a shared machine that tells a busy host from a slow exporter), and the
# sweep and API error counters from /metrics. Exits
# non-zero when RSS grew 10% or more after the warm-up, when any scrape failed, when the exporter
# died or turned unhealthy, or when no sweep succeeded. The last line is
# "soak: N passed, M failed" (checks).
#
# Builds nothing: the binary comes from LINQ_EXPORTER_BIN (default target/release/linq-exporter;
# run `cargo build --release` first). Only 127.0.0.1 traffic; every wait is bounded; the exporter
# it starts is stopped by pid on exit.
#
# Environment:
#   LINQ_EXPORTER_BIN     exporter binary (default target/release/linq-exporter)
#   SOAK_SCRAPERS         concurrent scrapers (default 8)
#   SOAK_PAUSE            seconds each scraper waits between scrapes (default 0.25)
#   SOAK_WARMUP           warm-up seconds (default max(30, 10% of the run), at most half of it)
#   SOAK_MAX_GROWTH       allowed RSS growth after warm-up, percent (default 10)
#   SOAK_DEMO_CHATS       simulated chats (default: the exporter's --demo.chats default, 3000)
#   SOAK_EXTRA_ARGS       more exporter flags, appended (e.g. "--linq.sweep-timeout 5s")
#   SOAK_SAMPLES_CSV      also write every RSS sample (time, RSS, fds, threads, CPU, load) here
#   SOAK_KEEP_TMP=1       keep the temporary directory (exporter log) for debugging

set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1

cd "$(dirname "$0")/.." || exit 2
BIN=${LINQ_EXPORTER_BIN:-target/release/linq-exporter}
DURATION=${1:-60}
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((10#$DURATION < 10)); then
    echo "usage: $0 [DURATION_SECONDS >= 10]" >&2
    exit 2
fi
DURATION=$((10#$DURATION))
if [[ ! -x $BIN ]]; then
    echo "soak: no exporter binary at $BIN (run cargo build --release, or set LINQ_EXPORTER_BIN)" >&2
    exit 2
fi

TMP=$(mktemp -d /tmp/linq-soak.XXXXXX)
EXPORTER_PID=
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local rc=$?
    if [[ -n $EXPORTER_PID ]] && kill -0 "$EXPORTER_PID" 2>/dev/null; then
        kill -TERM "$EXPORTER_PID" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$EXPORTER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$EXPORTER_PID" 2>/dev/null
        wait "$EXPORTER_PID" 2>/dev/null
    fi
    if [[ ${SOAK_KEEP_TMP:-0} == 1 || $rc -ne 0 ]]; then
        echo "soak: exporter log kept in $TMP/exporter.log"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port on 127.0.0.1 (the kernel picks it; a tiny window remains before the exporter binds).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()') || exit 2

demo_chats=()
if [[ -n ${SOAK_DEMO_CHATS:-} ]]; then
    demo_chats=(--demo.chats "$SOAK_DEMO_CHATS")
fi
args=(
    --demo "${demo_chats[@]}"
    --web.listen-address "127.0.0.1:$PORT"
    --linq.poll-interval 1s
    --demo.error-rate 0.05
    --demo.rate-limit-rate 0.02
    --demo.slow-rate 0.05
    --demo.slow-delay 200ms
    --demo.malformed-rate 0.01
    --linq.retry-backoff 50ms
    --linq.retry-max-backoff 1s
    --log.level warn
)
if [[ -n ${SOAK_EXTRA_ARGS:-} ]]; then
    read -r -a extra <<<"$SOAK_EXTRA_ARGS"
    args+=("${extra[@]}")
fi
echo "soak: $BIN ${args[*]}"
"$BIN" "${args[@]}" >"$TMP/exporter.log" 2>&1 &
EXPORTER_PID=$!

# Ready: the first sweep published (bounded wait).
ready=0
for _ in $(seq 1 120); do
    if ! kill -0 "$EXPORTER_PID" 2>/dev/null; then
        echo "soak: the exporter exited at start:" >&2
        tail -20 "$TMP/exporter.log" >&2
        exit 1
    fi
    if curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.5
done
if ((!ready)); then
    echo "soak: the exporter was not ready within 60 s" >&2
    tail -20 "$TMP/exporter.log" >&2
    exit 1
fi
echo "soak: exporter pid $EXPORTER_PID ready on 127.0.0.1:$PORT"

warmup=()
if [[ -n ${SOAK_WARMUP:-} ]]; then
    warmup=(--warmup "$SOAK_WARMUP")
fi
timeout -k 10 $((DURATION + 120)) python3 scripts/soak/soak.py \
    --url "http://127.0.0.1:$PORT/metrics" \
    --pid "$EXPORTER_PID" \
    --duration "$DURATION" \
    --scrapers "${SOAK_SCRAPERS:-8}" \
    --pause "${SOAK_PAUSE:-0.25}" \
    --max-growth "${SOAK_MAX_GROWTH:-10}" \
    --samples-csv "${SOAK_SAMPLES_CSV:-$TMP/rss.csv}" \
    "${warmup[@]}"
rc=$?

warnings=$(grep -c . "$TMP/exporter.log")
panics=$(grep -ci "panic" "$TMP/exporter.log")
echo "soak: exporter log: $warnings lines at warn level or above, $panics mentioning a panic"
if ((panics > 0)); then
    grep -i panic "$TMP/exporter.log" | head -5
    rc=1
fi
exit "$rc"
