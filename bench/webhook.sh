#!/usr/bin/env bash
# Webhook receiver throughput: verified events per second on one core with keep-alive clients,
# and the p99 latency of a 2xx, while /metrics is scraped; beside nginx answering the same
# requests with a static 200 on the same core, in the same run.
#
#   bench/webhook.sh [--bin PATH]            full: 20 s of load per server; about 1.5 minutes
#   bench/webhook.sh --smoke [--bin PATH]    5,000 events, 2 s: correctness only (every event
#                                            verified and counted once, no rejection); for CI
#
# The exporter (against the simulator, 3,000 chats) and nginx run on CPU 0 (taskset), wrk,
# the scrape loop, the simulator and the generator on CPU 1 (no pinning with fewer than 2 CPUs).
# Load: wrk -t1 -c32 --latency, each request a distinct pre-signed message event from
# bench/webhook_gen.py, replayed by bench/webhook_load.lua. Scrapes: gzip /metrics twice a second.
# The binary: --bin PATH, else $LINQ_EXPORTER_BIN, else target/release/linq-exporter (under
# $CARGO_TARGET_DIR when set). Needs wrk, nginx, curl, python3 (installed as bench/run.sh does
# when missing and root). Exits non-zero when a check fails or (full mode) a target misses.
# BENCH_KEEP=1 keeps the temp dir. See docs/benchmarks.md, "Webhook receiver".
set -euo pipefail

MODE=full
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${LINQ_EXPORTER_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/linq-exporter}
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) MODE=smoke ;;
        --bin)
            [ $# -ge 2 ] || { echo "bench/webhook.sh: --bin needs a path" >&2; exit 2; }
            BIN=$2
            shift
            ;;
        --bin=*) BIN=${1#--bin=} ;;
        -h | --help)
            sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench/webhook.sh: unknown argument: $1 (use --smoke, --bin PATH or nothing)" >&2
            exit 2
            ;;
    esac
    shift
done

CHATS=3000 CONNS=32 SCRAPE_INTERVAL=0.5
TARGET_EPS=20000 TARGET_P99_MS=5
if [ "$MODE" = smoke ]; then
    SECS=2 WARM_SECS=1 EVENTS=5000 WARM_EVENTS=1000 ENFORCE=0
else
    # Enough distinct events for 20 s at 40,000/s (twice the target); a faster receiver would
    # run out, which the run reports (webhook_exhausted) instead of sending duplicates.
    SECS=20 WARM_SECS=3 EVENTS=800000 WARM_EVENTS=150000 ENFORCE=1
fi

# shellcheck source=bench/lib.sh disable=SC1091
. "$REPO/bench/lib.sh"
ensure_packages
[ -x "$BIN" ] || die "no binary at $BIN (cargo build --release --locked, or pass --bin PATH)"
setup_work linq-webhook
# Run a copy: a rebuild during the run must not swap the binary under it.
cp "$BIN" "$WORK/linq-exporter"
EXE="$WORK/linq-exporter"

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    SERVER=(taskset -c 0) CLIENT=(taskset -c 1) PINNED="server CPU 0, clients CPU 1"
else
    SERVER=() CLIENT=() PINNED="not pinned ($(nproc) CPU)"
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f\n", a / b }'; }
# verdict VALUE OP TARGET -> pass | miss
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "nan" || v == "") { print "n/a"; exit } ok = (op == "<=") ? (v + 0 <= t + 0) : (v + 0 >= t + 0); print ok ? "pass" : "miss" }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system of one process
# CPU 0's ticks from /proc/stat: "busy idle steal" (busy: user nice system irq softirq)
cpu0_ticks() { awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8, $5 + $6, $9 }' /proc/stat; }
# cpu0_share "BEFORE" "AFTER" SERVER_TICKS -> "steal% other%": the hypervisor's steal, and
# the time other processes (kernel threads included) took on CPU 0, as shares of its time
cpu0_share() {
    echo "$1 $2 $3" | awk '{ t = ($4 - $1) + ($5 - $2) + ($6 - $3); if (t <= 0) { print "nan nan"; exit }
        o = ($4 - $1) - $7; if (o < 0) o = 0; printf "%.1f %.1f\n", 100 * ($6 - $3) / t, 100 * o / t }'
}
CLK_TCK=$(getconf CLK_TCK)
# metrics -> the sum of a family's samples, or one sample's value
scrape() { curl -sf "$METRICS" -o "$1" || die "could not scrape $METRICS"; }
family_sum() { awk -v m="$2" 'index($0, m) == 1 && (substr($0, length(m) + 1, 1) ~ /[{ ]/) { s += $NF } END { printf "%d\n", s }' "$1"; }
# wrk output -> requests/s, requests, seconds, p99 in ms, non-2xx/3xx, socket errors
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }
wrk_secs() { awk '/ requests in / { s = $4; sub(/s,$/, "", s); print s }' "$1"; }
wrk_p99() {
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1
        printf "%.2f\n", v * f }' "$1"
}
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/ { print $NF; f = 1 } END { if (!f) print 0 }' "$1"; }
wrk_sockerr() { awk '/Socket errors:/ { sub(/.*Socket errors: /, ""); print; f = 1 } END { if (!f) print "none" }' "$1"; }
wrk_field() { sed -n "s/^$2=//p" "$1"; }

REVISION=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
LOAD_START=$(loadavg)
say "mode=$MODE nproc=$(nproc) cpu='$CPU_MODEL' load=$LOAD_START pinning: $PINNED work=$WORK"

# ---------------------------------------------------------------------------------------------
# The simulator and the exporter (its first sweep lists the chats the events name)
# ---------------------------------------------------------------------------------------------
SPORT=$(free_port)
"${CLIENT[@]}" "$EXE" simulate --listen "127.0.0.1:$SPORT" --chats "$CHATS" >"$WORK/sim.out" 2>"$WORK/sim.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '^key=' "$WORK/sim.out" && break; sleep 0.1; done
SIM=$(sed -n 's/^url=//p' "$WORK/sim.out")
SIM_KEY=$(sed -n 's/^key=//p' "$WORK/sim.out")
[ -n "$SIM" ] && [ -n "$SIM_KEY" ] || { cat "$WORK/sim.log" >&2; die "simulator did not start"; }

SECRET=$(python3 -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(24)).decode())')
(umask 077 && echo "$SECRET" >"$WORK/secret")
MPORT=$(free_port)
WPORT=$(free_port)
METRICS="http://127.0.0.1:$MPORT/metrics"
HOOK="http://127.0.0.1:$WPORT/webhook"
# --webhook.max-age 1h: the requests are signed before the run, the check costs the same.
"${SERVER[@]}" "$EXE" --linq.base-url "$SIM" --linq.api-key "$SIM_KEY" \
    --web.listen-address "127.0.0.1:$MPORT" --webhook.listen-address "127.0.0.1:$WPORT" \
    --webhook.signing-secret-file "$WORK/secret" --webhook.max-age 1h --log.format json \
    >"$WORK/exporter.out" 2>"$WORK/exporter.log" &
EXP_PID=$!
PIDS+=("$EXP_PID")
for _ in $(seq 1 300); do
    grep -q '"sweep complete"' "$WORK/exporter.log" 2>/dev/null && break
    kill -0 "$EXP_PID" 2>/dev/null || break
    sleep 0.1
done
grep -q '"sweep complete"' "$WORK/exporter.log" || { tail -5 "$WORK/exporter.log" >&2; die "exporter: no sweep within 30 s"; }

# ---------------------------------------------------------------------------------------------
# The requests: a warm-up file and the measured one, distinct ids
# ---------------------------------------------------------------------------------------------
say "generating $WARM_EVENTS + $EVENTS signed events"
gen() { # gen FILE COUNT PREFIX
    "${CLIENT[@]}" python3 "$REPO/bench/webhook_gen.py" --out "$1" --count "$2" --prefix "$3" \
        --secret "$SECRET" --base-url "$SIM" --key "$SIM_KEY"
}
gen "$WORK/warm.req" "$WARM_EVENTS" w >"$WORK/gen-warm.out"
GEN=$(gen "$WORK/load.req" "$EVENTS" b)
say "   $GEN"
# Write the files out now: a gigabyte of dirty pages flushed during the load would take CPU 0.
sync "$WORK/warm.req" "$WORK/load.req"
MEAN_BODY=$(echo "$GEN" | sed -n 's/.*mean_body=\([0-9]*\).*/\1/p')

wrk_load() { # wrk_load OUT URL SECONDS FILE once|cycle
    local out=$1 url=$2 secs=$3 file=$4 mode=$5
    "${CLIENT[@]}" timeout $((secs + 60)) wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 10s --latency \
        -s "$REPO/bench/webhook_load.lua" "$url" -- "$file" 1 "$mode" >"$out" 2>&1 || true
}

# ---------------------------------------------------------------------------------------------
# 1. The exporter: warm-up, then the measured run beside the scrape loop
# ---------------------------------------------------------------------------------------------
say "1. exporter: warm-up ${WARM_SECS}s, then ${SECS}s of wrk -t1 -c$CONNS, gzip /metrics every ${SCRAPE_INTERVAL}s"
wrk_load "$WORK/wrk-warm.txt" "$HOOK" "$WARM_SECS" "$WORK/warm.req" once
scrape "$WORK/before.prom"
EV_BEFORE=$(family_sum "$WORK/before.prom" linq_webhook_events_total)
REJ_BEFORE=$(family_sum "$WORK/before.prom" linq_webhook_rejected_total)
SWEEPS_BEFORE=$(grep -c '"sweep complete"' "$WORK/exporter.log" || true)
# The scrape loop: bounded (at most twice the run's scrapes), and told to stop when wrk ends.
rm -f "$WORK/scrape.stop"
"${CLIENT[@]}" bash -c '
    for _ in $(seq 1 $(('"$SECS"' * 4 + 4))); do
        [ -e "$1/scrape.stop" ] && exit 0
        curl -s -m 10 -H "Accept-Encoding: gzip" -o /dev/null \
            -w "%{http_code} %{time_total} %{size_download}\n" "$2" >>"$1/scrapes.txt" || echo "000 0 0" >>"$1/scrapes.txt"
        sleep '"$SCRAPE_INTERVAL"'
    done' _ "$WORK" "$METRICS" &
SCRAPE_PID=$!
PIDS+=("$SCRAPE_PID")
C0=$(cpu_ticks "$EXP_PID")
S0=$(cpu0_ticks)
wrk_load "$WORK/wrk-exporter.txt" "$HOOK" "$SECS" "$WORK/load.req" once
C1=$(cpu_ticks "$EXP_PID")
S1=$(cpu0_ticks)
touch "$WORK/scrape.stop"
for _ in $(seq 1 150); do kill -0 "$SCRAPE_PID" 2>/dev/null || break; sleep 0.1; done
stop "$SCRAPE_PID"
scrape "$WORK/after.prom"
SWEEPS_AFTER=$(grep -c '"sweep complete"' "$WORK/exporter.log" || true)
EV_AFTER=$(family_sum "$WORK/after.prom" linq_webhook_events_total)
EVENTS_RUN=$((EV_AFTER - EV_BEFORE))
REJ_RUN=$(($(family_sum "$WORK/after.prom" linq_webhook_rejected_total) - REJ_BEFORE))
REJ_ALL=$(family_sum "$WORK/after.prom" linq_webhook_rejected_total)
EVICTED=$(sample "$WORK/after.prom" linq_webhook_dedupe_evictions_total)
W=$WORK/wrk-exporter.txt
EX_REQS=$(wrk_requests "$W")
EX_SECS=$(wrk_secs "$W")
EX_RPS=$(wrk_rps "$W")
EX_P99=$(wrk_p99 "$W")
EX_NON2XX=$(wrk_non2xx "$W")
EX_SOCKERR=$(wrk_sockerr "$W")
EX_SENT=$(wrk_field "$W" webhook_sent)
EX_EXHAUSTED=$(wrk_field "$W" webhook_exhausted)
EPS=$(awk -v e="$EVENTS_RUN" -v s="$EX_SECS" 'BEGIN { if (s + 0 == 0) print 0; else printf "%.0f\n", e / s }')
EX_CPU_MS=$(((C1 - C0) * 1000 / CLK_TCK))
EX_CPU_PCT=$(awk -v c="$EX_CPU_MS" -v s="$EX_SECS" 'BEGIN { if (s + 0 == 0) print 0; else printf "%.0f\n", c / (s * 10) }')
read -r EX_STEAL EX_OTHER <<<"$(cpu0_share "$S0" "$S1" $((C1 - C0)))"
EX_US_PER_EVENT=$(awk -v c="$EX_CPU_MS" -v e="$EVENTS_RUN" 'BEGIN { if (e == 0) print "nan"; else printf "%.1f\n", c * 1000 / e }')
SCRAPES=$(wc -l <"$WORK/scrapes.txt" 2>/dev/null || echo 0)
SCRAPES_OK=$(awk '$1 == 200' "$WORK/scrapes.txt" 2>/dev/null | wc -l)
SCRAPE_MAX_MS=$(awk '$1 == 200 && $2 > m { m = $2 } END { printf "%.1f\n", m * 1000 }' "$WORK/scrapes.txt" 2>/dev/null)
SCRAPE_MEAN_MS=$(awk '$1 == 200 { s += $2; n++ } END { if (n) printf "%.1f\n", s * 1000 / n; else print 0 }' "$WORK/scrapes.txt" 2>/dev/null)
SCRAPE_BYTES=$(awk '$1 == 200 { b = $3 } END { print b + 0 }' "$WORK/scrapes.txt" 2>/dev/null)
say "   $EVENTS_RUN events in ${EX_SECS}s = $EPS/s (wrk $EX_RPS req/s), p99 $EX_P99 ms, exporter CPU ${EX_CPU_PCT}% ($EX_US_PER_EVENT us/event); scrapes $SCRAPES_OK/$SCRAPES ok; CPU 0 steal ${EX_STEAL}%, other ${EX_OTHER}%"
stop "$EXP_PID"

# ---------------------------------------------------------------------------------------------
# 2. The baseline: nginx, one worker on the same CPU, return 200 for the same requests
# ---------------------------------------------------------------------------------------------
say "2. nginx baseline: ${SECS}s of the same load"
mkdir -p "$WORK/nginx-tmp"
NPORT=$(free_port)
user=""
[ "$(id -u)" = 0 ] && user="user root;"
sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$NPORT|g" -e "s|@USER@|$user|g" \
    "$REPO/bench/webhook_nginx.conf.in" >"$WORK/nginx.conf"
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" -t -q 2>"$WORK/nginx-t.log" ||
    { cat "$WORK/nginx-t.log" >&2; die "nginx config test failed"; }
"${SERVER[@]}" "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
NG_PID=$!
PIDS+=("$NG_PID")
NG_URL="http://127.0.0.1:$NPORT/webhook"
for _ in $(seq 1 100); do curl -sf -o /dev/null -X POST -d x "$NG_URL" && break; sleep 0.1; done
curl -sf -o /dev/null -X POST -d x "$NG_URL" || die "nginx did not come up (see $WORK/nginx-error.log)"
NG_WORKER=$(pgrep -P "$NG_PID" | head -1 || true)
wrk_load "$WORK/wrk-nginx-warm.txt" "$NG_URL" "$WARM_SECS" "$WORK/warm.req" cycle
N0=$( [ -n "$NG_WORKER" ] && cpu_ticks "$NG_WORKER" || echo 0)
S0=$(cpu0_ticks)
wrk_load "$WORK/wrk-nginx.txt" "$NG_URL" "$SECS" "$WORK/load.req" cycle
N1=$( [ -n "$NG_WORKER" ] && cpu_ticks "$NG_WORKER" || echo 0)
S1=$(cpu0_ticks)
read -r NG_STEAL NG_OTHER <<<"$(cpu0_share "$S0" "$S1" $((N1 - N0)))"
W=$WORK/wrk-nginx.txt
NG_RPS=$(awk -v r="$(wrk_rps "$W")" 'BEGIN { printf "%.0f\n", r }')
NG_P99=$(wrk_p99 "$W")
NG_NON2XX=$(wrk_non2xx "$W")
NG_SECS=$(wrk_secs "$W")
NG_CPU_MS=$(((N1 - N0) * 1000 / CLK_TCK))
NG_CPU_PCT=$(awk -v c="$NG_CPU_MS" -v s="$NG_SECS" 'BEGIN { if (s + 0 == 0) print 0; else printf "%.0f\n", c / (s * 10) }')
NG_US_PER_REQ=$(awk -v c="$NG_CPU_MS" -v n="$(wrk_requests "$W")" 'BEGIN { if (n + 0 == 0) print "nan"; else printf "%.1f\n", c * 1000 / n }')
say "   nginx $NG_RPS req/s, p99 $NG_P99 ms, worker CPU ${NG_CPU_PCT}% ($NG_US_PER_REQ us/request); CPU 0 steal ${NG_STEAL}%, other ${NG_OTHER}%"
stop "$NG_PID"

# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
FAIL=0
fail() {
    echo "bench/webhook.sh: $*" >&2
    FAIL=1
}
[ -n "$EX_REQS" ] || fail "wrk against the exporter printed no result (see $WORK/wrk-exporter.txt)"
[ "$REJ_ALL" = 0 ] || fail "linq_webhook_rejected_total = $REJ_ALL over the run (warm-up included), want 0: $(grep '^linq_webhook_rejected_total' "$WORK/after.prom" | grep -v ' 0$' | tr '\n' ' ')"
# After the file's end (smoke), wrk sends GETs (405, counted nowhere else): non-2xx = those.
NON2XX_WANT=0
[ "$EX_EXHAUSTED" != 1 ] || NON2XX_WANT=$((${EX_REQS:-0} - ${EX_SENT:-0}))
[ "$EX_NON2XX" = "$NON2XX_WANT" ] || fail "wrk: $EX_NON2XX non-2xx answers from the exporter, want $NON2XX_WANT"
[ "$EX_SOCKERR" = none ] || fail "wrk: socket errors against the exporter: $EX_SOCKERR"
[ "$NG_NON2XX" = 0 ] || fail "wrk: $NG_NON2XX non-2xx answers from nginx, want 0"
[ "$SCRAPES" -gt 0 ] && [ "$SCRAPES_OK" = "$SCRAPES" ] || fail "scrapes during the load: $SCRAPES_OK of $SCRAPES answered 200"
if [ "$MODE" = smoke ]; then
    # All the file's events sent, each verified and counted exactly once.
    [ "$EX_EXHAUSTED" = 1 ] || fail "smoke: wrk did not send all $EVENTS events in ${SECS}s (sent ${EX_SENT:-?})"
    [ "$EVENTS_RUN" = "$EVENTS" ] || fail "smoke: linq_webhook_events_total rose by $EVENTS_RUN, want $EVENTS"
else
    [ "$EX_EXHAUSTED" = 0 ] || fail "the exporter took all $EVENTS events before ${SECS}s: raise EVENTS (its rate is then higher than measured)"
    # Every request wrk completed is a new event; the server may finish a few more (one per
    # connection) that wrk stopped waiting for.
    [ "$EVENTS_RUN" -ge "${EX_REQS:-0}" ] && [ "$EVENTS_RUN" -le $((${EX_SENT:-0})) ] ||
        fail "events counted ($EVENTS_RUN) not between wrk's completed ($EX_REQS) and sent (${EX_SENT:-?}) requests"
fi
CHECKS=$([ "$FAIL" = 0 ] && echo pass || echo FAIL)
V_EPS=$(verdict "$EPS" ">=" "$TARGET_EPS")
V_P99=$(verdict "$EX_P99" "<=" "$TARGET_P99_MS")
if [ "$ENFORCE" = 1 ]; then
    [ "$V_EPS" = pass ] || fail "verified events/s = $EPS, target >= $TARGET_EPS"
    [ "$V_P99" = pass ] || fail "p99 = $EX_P99 ms, target <= $TARGET_P99_MS ms"
else
    V_EPS="$V_EPS*" V_P99="$V_P99*"
fi
LOAD_END=$(loadavg)
BIN_REVISION=$(grep -o '^linq_exporter_build_info{[^}]*revision="[^"]*"' "$WORK/after.prom" | sed 's/.*revision="//; s/"$//' || true)

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
echo
echo "linq-exporter webhook receiver ($MODE): $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($CPU_MODEL), $PINNED"
echo "checkout $REVISION, binary revision ${BIN_REVISION:-?}; load average $LOAD_START at start, $LOAD_END at end"
echo "wrk -t1 -c$CONNS ${SECS}s, distinct signed message events (mean body $MEAN_BODY bytes); gzip /metrics every ${SCRAPE_INTERVAL}s beside it"
F='%-36s %12s %12s %8s %10s %6s\n'
# shellcheck disable=SC2059
{
    printf "$F" measure exporter "nginx 200" ratio target result
    printf "$F" "verified events/s (one core)" "$EPS" "$NG_RPS" "$(ratio "$EPS" "$NG_RPS")" ">= $TARGET_EPS" "$V_EPS"
    printf "$F" "p99 of a 2xx (ms)" "$EX_P99" "$NG_P99" "$(ratio "$EX_P99" "$NG_P99")" "<= $TARGET_P99_MS" "$V_P99"
    printf "$F" "server CPU (% of one core)" "$EX_CPU_PCT" "$NG_CPU_PCT" "" "" ""
    printf "$F" "CPU 0: steal / other processes (%)" "$EX_STEAL / $EX_OTHER" "$NG_STEAL / $NG_OTHER" "" "" ""
    printf "$F" "CPU per request (us)" "$EX_US_PER_EVENT" "$NG_US_PER_REQ" "$(ratio "$EX_US_PER_EVENT" "$NG_US_PER_REQ")" "" ""
    printf "$F" "scrapes answered 200 / tried" "$SCRAPES_OK/$SCRAPES" "" "" "all" "$([ "$SCRAPES" -gt 0 ] && [ "$SCRAPES_OK" = "$SCRAPES" ] && echo pass || echo FAIL)"
    printf "$F" "   scrape time mean / max (ms)" "$SCRAPE_MEAN_MS / $SCRAPE_MAX_MS" "" "" "" ""
    printf "$F" "rejections, non-2xx" "$REJ_RUN, $((EX_NON2XX - NON2XX_WANT))" "-, $NG_NON2XX" "" "0" "$CHECKS"
}
[ "$ENFORCE" = 1 ] || echo "* smoke: targets reported, not enforced"
echo
cat <<EOF
mode=$MODE
revision=$REVISION
binary_revision=${BIN_REVISION:-unknown}
nproc=$(nproc)
pinning=$PINNED
load_start=$LOAD_START
load_end=$LOAD_END
connections=$CONNS
seconds=$EX_SECS
mean_body_bytes=$MEAN_BODY
events=$EVENTS_RUN
events_per_second=$EPS
wrk_requests=$EX_REQS
wrk_sent=${EX_SENT:-}
wrk_rps=$EX_RPS
wrk_exhausted=${EX_EXHAUSTED:-}
p99_ms=$EX_P99
latency_distribution=$(awk '$1 ~ /^[0-9]+%$/ { printf "%s=%s ", $1, $2 }' "$WORK/wrk-exporter.txt" | sed 's/ $//')
non2xx=$EX_NON2XX
non2xx_after_end_of_file=$NON2XX_WANT
socket_errors=$EX_SOCKERR
rejected=$REJ_RUN
dedupe_evictions=${EVICTED:-}
exporter_cpu_ms=$EX_CPU_MS
exporter_cpu_percent=$EX_CPU_PCT
exporter_cpu_us_per_event=$EX_US_PER_EVENT
cpu0_steal_percent=$EX_STEAL
cpu0_other_percent=$EX_OTHER
sweeps_during=$((SWEEPS_AFTER - SWEEPS_BEFORE))
scrapes=$SCRAPES
scrapes_ok=$SCRAPES_OK
scrape_mean_ms=$SCRAPE_MEAN_MS
scrape_max_ms=$SCRAPE_MAX_MS
scrape_gzip_bytes=$SCRAPE_BYTES
nginx_rps=$NG_RPS
nginx_p99_ms=$NG_P99
nginx_cpu_percent=$NG_CPU_PCT
nginx_cpu_us_per_request=$NG_US_PER_REQ
nginx_cpu0_steal_percent=$NG_STEAL
nginx_cpu0_other_percent=$NG_OTHER
events_ratio=$(ratio "$EPS" "$NG_RPS")
result=$([ "$FAIL" = 0 ] && echo pass || echo fail)
elapsed_s=$(($(date +%s) - T0))
EOF
[ "$FAIL" = 0 ]
