#!/usr/bin/env bash
# linq-exporter benchmark (issue 6): sweep speed, concurrent sweeps, scrape cost, memory and
# correctness at 100,000 chats, each measured beside a baseline on the same machine in the same run.
#
#   bench/run.sh            full run: 100,000 chats (about 3.5 minutes plus the build)
#   bench/run.sh --smoke    2,000 chats, short wrk runs: keeps the script working in CI
#
# Needs root (or the packages already installed) on Debian 12: installs nginx, wrk, curl and
# python3 when missing. Only 127.0.0.1 traffic. Prints a table, then name=value lines; exits
# non-zero only when a correctness check fails (or the benchmark cannot run at all), never on
# timings. Environment: BENCH_NO_BUILD=1 skips `cargo build`; BENCH_KEEP=1 keeps the temp dir.
# See docs/benchmarks.md for what each number means and the latest results.
set -euo pipefail

MODE=full
for arg in "$@"; do
    case "$arg" in
        --smoke) MODE=smoke ;;
        -h | --help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench/run.sh: unknown argument: $arg (use --smoke or nothing)" >&2
            exit 2
            ;;
    esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/linq-exporter"
KEY=bench-key-not-secret

if [ "$MODE" = smoke ]; then
    CHATS=2000 CONC_CHATS=2000 CONC_NUMBERS=4 CONC_LATENCY_MS=10
    REPS=1 WRK_SECS=1 LAT_SECS=2 MEM_INTERVAL=2s SWEEP_WAIT=60
else
    CHATS=100000 CONC_CHATS=100000 CONC_NUMBERS=20 CONC_LATENCY_MS=50
    REPS=5 WRK_SECS=5 LAT_SECS=10 MEM_INTERVAL=15s SWEEP_WAIT=300
fi
CONCURRENCY=4 # the exporter's default --linq.concurrency

# shellcheck source=bench/lib.sh disable=SC1091
. "$REPO/bench/lib.sh"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# ratio A B -> A/B with two decimals ("nan" when B is 0 or empty)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f\n", a / b }'; }
# best: the smallest number (on a shared machine, noise only ever adds time)
best() { tr ' ' '\n' | awk 'NF && (m == "" || $1 + 0 < m + 0) { m = $1 } END { print m }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# verdict VALUE OP TARGET -> pass | miss
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "nan") { print "n/a"; exit } ok = (op == "<=") ? (v + 0 <= t + 0) : (v + 0 >= t + 0); print ok ? "pass" : "miss" }'; }

# ---------------------------------------------------------------------------------------------
# Packages and the binary
# ---------------------------------------------------------------------------------------------
ensure_packages

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    say "cargo build --release --locked"
    (cd "$REPO" && cargo build --release --locked)
fi
[ -x "$BIN" ] || die "no binary at $BIN"

setup_work linq-bench
# Run a copy: a rebuild in the checkout during the run must not swap the binary under it.
cp "$BIN" "$WORK/linq-exporter"
BIN="$WORK/linq-exporter"
sweeps_done() { # sweeps_done LOGFILE: how many "sweep complete" lines (0 before the file exists)
    local n
    n=$(grep -c '"sweep complete"' "$1" 2>/dev/null || true)
    echo "${n:-0}"
}
wait_sweeps() { # wait_sweeps LOGFILE COUNT SECONDS: until COUNT "sweep complete" lines
    local _
    for _ in $(seq 1 $(($3 * 10))); do
        [ "$(sweeps_done "$1")" -ge "$2" ] && return 0
        grep -q '"sweep failed' "$1" 2>/dev/null && { tail -3 "$1" >&2; return 1; }
        sleep 0.1
    done
    return 1
}
log_field() { # log_field LOGFILE FIELD: FIELD of the last "sweep complete" line
    grep '"sweep complete"' "$1" | tail -1 | grep -o "\"$2\":[0-9]*" | cut -d: -f2
}
vm_hwm() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status"; }
vm_rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
sum_chats() { awk '/^linq_chats[{ ]/ { s += $NF } END { printf "%d\n", s }' "$1"; }
count_series() { grep -c "^$2[{ ]" "$1" || true; }
metric_value() { awk -v m="$2" 'index($0, m) == 1 { print $NF; exit }' "$1"; }
# wrk output -> requests/s, and the 99th percentile in ms
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_p99() {
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1
        printf "%.3f\n", v * f }' "$1"
}
wrk_errors() { awk '/Socket errors|Non-2xx/ { print }' "$1"; }

# time_ms CMD...: runs CMD (its failure is not fatal) and sets WALL_MS and CPU_MS (user + sys
# of CMD and its children, from this shell's cutime + cstime)
time_ms() {
    local t0 t1 c0 c1 me=$BASHPID
    c0=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
    t0=$(now_ms)
    "$@" || true
    t1=$(now_ms)
    c1=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
    WALL_MS=$((t1 - t0))
    CPU_MS=$(((c1 - c0) * 1000 / CLK_TCK))
}
CLK_TCK=$(getconf CLK_TCK)

REVISION=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
LOAD_START=$(loadavg)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
say "mode=$MODE nproc=$(nproc) cpu='$CPU_MODEL' mem=${MEM_GIB}GiB load=$LOAD_START work=$WORK"

# ---------------------------------------------------------------------------------------------
# Dataset and nginx
# ---------------------------------------------------------------------------------------------
say "generating $CHATS chats"
DATASET=$(python3 "$REPO/bench/gen_dataset.py" --out "$WORK/www" --chats "$CHATS" --numbers 20)
say "dataset: $DATASET"
start_nginx

# The walk in order: the first page without a cursor, then each page's next_cursor.
mapfile -t CURSORS <"$WORK/www/order.txt"
PAGES=${#CURSORS[@]}
first_next=$(curl -s "$API/v3/chats?limit=100" | python3 -c 'import json, sys; print(json.load(sys.stdin)["next_cursor"] or "")')
[ "$PAGES" -le 1 ] || [ "$first_next" = "${CURSORS[1]}" ] || die "nginx: first page's next_cursor does not match the dataset"
{
    echo 'silent'
    echo "header = \"Authorization: Bearer $KEY\""
    # shellcheck disable=SC2028 # the \n is for curl
    echo 'write-out = "%{num_connects} %{size_download}\n"'
    for c in "${CURSORS[@]}"; do
        if [ -z "$c" ]; then
            echo "url = \"$API/v3/chats?limit=100\""
        else
            echo "url = \"$API/v3/chats?limit=100&cursor=$c\""
        fi
        echo 'output = "/dev/null"'
    done
} >"$WORK/curl.cfg"

# ---------------------------------------------------------------------------------------------
# 1. Sweep: exporter --once vs one keep-alive curl over the same pages
# ---------------------------------------------------------------------------------------------
say "1. sweep of $CHATS chats ($PAGES pages): $REPS x (curl, exporter --once)"
curl -K "$WORK/curl.cfg" >"$WORK/curl.out" # warm-up: page cache, nginx
CURL_CONNECTS=$(awk '{ s += $1 } END { print s }' "$WORK/curl.out")
CURL_BYTES=$(awk '{ s += $2 } END { print s }' "$WORK/curl.out")
[ "$(wc -l <"$WORK/curl.out")" = "$PAGES" ] || die "curl fetched $(wc -l <"$WORK/curl.out") pages, expected $PAGES"
curl_ms=() once_ms=() once_wall=() once_cpu=() curl_cpu=()
for r in $(seq 1 "$REPS"); do
    time_ms curl -K "$WORK/curl.cfg" >"$WORK/curl.out"
    curl_ms+=("$WALL_MS") curl_cpu+=("$CPU_MS")
    time_ms timeout 600 "$BIN" --once --linq.base-url "$API" --linq.api-key "$KEY" \
        --linq.phone-numbers=false --log.format json >"$WORK/once.prom" 2>"$WORK/once.log"
    d=$(log_field "$WORK/once.log" duration_ms)
    [ -n "$d" ] || { tail -5 "$WORK/once.log" >&2; die "exporter --once did not complete a sweep"; }
    once_ms+=("$d") once_wall+=("$WALL_MS") once_cpu+=("$CPU_MS")
    say "   rep $r: curl ${curl_ms[-1]} ms (cpu ${curl_cpu[-1]} ms), exporter sweep $d ms, --once wall $WALL_MS ms (cpu $CPU_MS ms)"
done
CURL_MS=$(echo "${curl_ms[*]}" | best)
SWEEP_MS=$(echo "${once_ms[*]}" | best)
CURL_MEDIAN_MS=$(echo "${curl_ms[*]}" | median)
SWEEP_MEDIAN_MS=$(echo "${once_ms[*]}" | median)
ONCE_WALL_MS=$(echo "${once_wall[*]}" | best)
ONCE_CPU_MS=$(echo "${once_cpu[*]}" | best)
CURL_CPU_MS=$(echo "${curl_cpu[*]}" | best)
SWEEP_RATIO=$(ratio "$SWEEP_MS" "$CURL_MS")
SWEEP_WALL_RATIO=$(ratio "$ONCE_WALL_MS" "$CURL_MS")
ONCE_PAGES=$(log_field "$WORK/once.log" pages)
SUM_ONCE=$(sum_chats "$WORK/once.prom")

# ---------------------------------------------------------------------------------------------
# 2. Concurrent sweep: numbers x chats behind the simulator's added latency
# ---------------------------------------------------------------------------------------------
say "2. concurrent sweep: $CONC_CHATS chats over $CONC_NUMBERS numbers, ${CONC_LATENCY_MS} ms latency, concurrency $CONCURRENCY"
SPORT=$(free_port)
"$BIN" simulate --listen "127.0.0.1:$SPORT" --chats "$CONC_CHATS" --numbers "$CONC_NUMBERS" \
    --latency "${CONC_LATENCY_MS}ms" >"$WORK/sim.out" 2>"$WORK/sim.log" &
SIM_PID=$!
PIDS+=("$SIM_PID")
SIM="http://127.0.0.1:$SPORT"
for _ in $(seq 1 100); do grep -q '^url=' "$WORK/sim.out" && break; sleep 0.1; done
grep -q '^url=' "$WORK/sim.out" || die "simulator did not start"
SIM_KEY=$(sed -n 's/^key=//p' "$WORK/sim.out")
FROM=$(python3 -c "print(','.join('+1415555%04d' % (100 + i) for i in range($CONC_NUMBERS)))")
conc_ms=()
for r in $(seq 1 "$REPS"); do
    timeout 600 "$BIN" --once --linq.base-url "$SIM" --linq.api-key "$SIM_KEY" --linq.from "$FROM" \
        --linq.concurrency "$CONCURRENCY" --linq.phone-numbers=false --log.format json \
        >"$WORK/conc.prom" 2>"$WORK/conc.log" || true
    d=$(log_field "$WORK/conc.log" duration_ms)
    [ -n "$d" ] || { tail -5 "$WORK/conc.log" >&2; die "concurrent --once did not complete a sweep"; }
    conc_ms+=("$d")
    say "   rep $r: ${d} ms, $(log_field "$WORK/conc.log" pages) pages"
done
stop "$SIM_PID"
CONC_MS=$(echo "${conc_ms[*]}" | best)
CONC_PAGES=$(log_field "$WORK/conc.log" pages)
CONC_IDEAL_MS=$((CONC_PAGES * CONC_LATENCY_MS / CONCURRENCY))
CONC_RATIO=$(ratio "$CONC_MS" "$CONC_IDEAL_MS")
SUM_CONC=$(sum_chats "$WORK/conc.prom")

# ---------------------------------------------------------------------------------------------
# 3 + 4. Scrapes and memory: a long-running exporter over the nginx dataset
# ---------------------------------------------------------------------------------------------
start_exporter() { # start_exporter NAME PORT ARGS...: sets EXP_PID
    local name=$1 port=$2
    shift 2
    "$BIN" --linq.base-url "$API" --linq.api-key "$KEY" --linq.phone-numbers=false \
        --web.listen-address "127.0.0.1:$port" --log.format json "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.log" &
    EXP_PID=$!
    PIDS+=("$EXP_PID")
}
wrk_run() { # wrk_run OUTFILE SECONDS URL [wrk args...]
    local out=$1 secs=$2 url=$3
    shift 3
    timeout $((secs + 60)) wrk -d "${secs}s" --timeout 30s "$@" "$url" >"$out" 2>&1 || true
    wrk_errors "$out" | sed 's/^/   wrk: /' >&2 || true
}
GZ=(-H 'Accept-Encoding: gzip')

say "3. scrape: exporter (poll interval 1h) vs nginx serving the same bytes"
APORT=$(free_port)
start_exporter steady "$APORT" --linq.poll-interval 1h
A_PID=$EXP_PID
A="http://127.0.0.1:$APORT/metrics"
# Sample the resident set while the first sweep runs: the walk (builder) phase ends at its
# duration_ms, then the snapshot is rendered and published.
A_T0=$(now_ms)
# A plain scrape while the first sweep runs: the sweeps keep the plain bytes from then on (without
# plain scrapes only the gzip form is kept; see section 4).
plain_asked=0
for _ in $(seq 1 $((SWEEP_WAIT * 20))); do
    if [ "$plain_asked" = 0 ] && curl -s -o /dev/null "$A"; then plain_asked=1; fi
    echo "$(($(now_ms) - A_T0)) $(vm_rss "$A_PID")" >>"$WORK/steady-rss.txt"
    grep -q '"sweep complete"' "$WORK/steady.log" && break
    grep -q '"sweep failed' "$WORK/steady.log" && break
    sleep 0.05
done
wait_sweeps "$WORK/steady.log" 1 1 || die "long-running exporter: no sweep (see $WORK/steady.log)"
RSS_AFTER_SWEEP=$(vm_hwm "$A_PID")
A_WALK_MS=$(log_field "$WORK/steady.log" duration_ms)
RSS_WALK=$(awk -v t="$A_WALK_MS" '$1 <= t && $2 > m { m = $2 } END { print m + 0 }' "$WORK/steady-rss.txt")
curl -s "$A" -o "$WORK/www/static/metrics.txt"
curl -s "${GZ[@]}" "$A" -o "$WORK/www/static/metrics.txt.gz"
cp "$WORK/www/static/metrics.txt" "$WORK/steady.prom"
for _ in 1 2 3; do # what Prometheus does: one scrape at a time, mostly gzip
    curl -s "$A" -o /dev/null
    curl -s "${GZ[@]}" "$A" -o /dev/null
done
RSS_FIRST=$(vm_hwm "$A_PID")
RSS_STEADY=$(vm_rss "$A_PID")
PLAIN_BYTES=$(stat -c %s "$WORK/www/static/metrics.txt")
GZIP_BYTES=$(stat -c %s "$WORK/www/static/metrics.txt.gz")
SERIES=$(metric_value "$WORK/steady.prom" "linq_exporter_series ")
BIN_REVISION=$(grep -o '^linq_exporter_build_info{[^}]*revision="[^"]*"' "$WORK/steady.prom" | sed 's/.*revision="//; s/"$//' || true)
SUM_STEADY=$(sum_chats "$WORK/steady.prom")
INFO_SERIES=$(count_series "$WORK/steady.prom" linq_chat_info)
ng_ce=$(curl -s -o /dev/null -D - "${GZ[@]}" "$API/metrics" | tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
ng_len=$(curl -s "${GZ[@]}" "$API/metrics" | wc -c)
if [ "$ng_ce" != gzip ] || [ "$ng_len" != "$GZIP_BYTES" ]; then
    die "nginx does not serve the saved gzip body (encoding '$ng_ce', $ng_len bytes)"
fi
gzip -t "$WORK/www/static/metrics.txt.gz" || die "the exporter's gzip body does not decompress"
say "   /metrics: $SERIES series, $PLAIN_BYTES bytes plain, $GZIP_BYTES bytes gzip"

NG="$API/metrics"
# Throughput: 8 connections, exporter and nginx alternating, two rounds; the best round counts.
best_rps() { # best_rps NAME URL [wrk args...]: appends each round's req/s to NAME.rps
    local name=$1 url=$2
    shift 2
    wrk_run "$WORK/wrk-$name.txt" "$WRK_SECS" "$url" -t2 -c8 "$@"
    wrk_rps "$WORK/wrk-$name.txt" >>"$WORK/$name.rps"
}
for _ in 1 2; do
    best_rps ng-plain "$NG"
    best_rps ex-plain "$A"
    best_rps ng-gzip "$NG" "${GZ[@]}"
    best_rps ex-gzip "$A" "${GZ[@]}"
done
top() { awk 'NF && (m == "" || $1 + 0 > m + 0) { m = $1 } END { print m }' "$WORK/$1.rps"; }
NG_PLAIN_RPS=$(top ng-plain)
EX_PLAIN_RPS=$(top ex-plain)
NG_GZIP_RPS=$(top ng-gzip)
EX_GZIP_RPS=$(top ex-gzip)
PLAIN_RATIO=$(ratio "$EX_PLAIN_RPS" "$NG_PLAIN_RPS")
GZIP_RATIO=$(ratio "$EX_GZIP_RPS" "$NG_GZIP_RPS")
say "   plain: exporter $EX_PLAIN_RPS req/s, nginx $NG_PLAIN_RPS req/s; gzip: exporter $EX_GZIP_RPS req/s, nginx $NG_GZIP_RPS req/s"
# Idle latency: two connections scraping gzip back to back, no sweep running.
wrk_run "$WORK/wrk-idle.txt" "$LAT_SECS" "$A" -t1 -c2 --latency "${GZ[@]}"
P99_IDLE=$(wrk_p99 "$WORK/wrk-idle.txt")
RSS_LOAD=$(vm_hwm "$A_PID")
stop "$A_PID"

say "3a. scrape per format: OpenMetrics and protobuf (--web.protobuf-always)"
OM_ACCEPT='Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'
PB_ACCEPT='Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3'
FPORT=$(free_port)
start_exporter formats "$FPORT" --linq.poll-interval 1h --web.protobuf-always
F_PID=$EXP_PID
F="http://127.0.0.1:$FPORT/metrics"
# A plain scrape as soon as it listens, so that the first sweep keeps the plain bytes (a small
# dataset may be swept before it: then wait for nothing more than the gzip forms below).
for _ in $(seq 1 $((SWEEP_WAIT * 10))); do
    curl -s -o /dev/null -H "$PB_ACCEPT" "$F" && break
    sleep 0.1
done
wait_sweeps "$WORK/formats.log" 1 "$SWEEP_WAIT" || die "formats exporter: no sweep (see $WORK/formats.log)"
pb_ct=$(curl -s -o /dev/null -w '%{content_type}' -H "$PB_ACCEPT" "$F")
case "$pb_ct" in application/vnd.google.protobuf*) ;; *) die "protobuf not served after the sweep ($pb_ct)" ;; esac
curl -s -H "$OM_ACCEPT" "$F" -o "$WORK/www/static/metrics-om.txt"
curl -s -H "$OM_ACCEPT" "${GZ[@]}" "$F" -o "$WORK/www/static/metrics-om.txt.gz"
curl -s -H "$PB_ACCEPT" "$F" -o "$WORK/www/static/metrics-pb.bin"
curl -s -H "$PB_ACCEPT" "${GZ[@]}" "$F" -o "$WORK/www/static/metrics-pb.bin.gz"
tail -c 6 "$WORK/www/static/metrics-om.txt" | grep -q '# EOF' || die "OpenMetrics body does not end in # EOF"
OM_BYTES=$(stat -c %s "$WORK/www/static/metrics-om.txt")
OM_GZIP_BYTES=$(stat -c %s "$WORK/www/static/metrics-om.txt.gz")
PB_BYTES=$(stat -c %s "$WORK/www/static/metrics-pb.bin")
PB_GZIP_BYTES=$(stat -c %s "$WORK/www/static/metrics-pb.bin.gz")
say "   OpenMetrics $OM_BYTES bytes ($OM_GZIP_BYTES gzip), protobuf $PB_BYTES bytes ($PB_GZIP_BYTES gzip)"
for _ in 1 2; do
    best_rps ng-om "$API/metrics-om"
    best_rps ex-om "$F" -H "$OM_ACCEPT"
    best_rps ng-om-gzip "$API/metrics-om" "${GZ[@]}"
    best_rps ex-om-gzip "$F" -H "$OM_ACCEPT" "${GZ[@]}"
    best_rps ng-pb "$API/metrics-pb"
    best_rps ex-pb "$F" -H "$PB_ACCEPT"
    best_rps ng-pb-gzip "$API/metrics-pb" "${GZ[@]}"
    best_rps ex-pb-gzip "$F" -H "$PB_ACCEPT" "${GZ[@]}"
done
for f in om om-gzip pb pb-gzip; do
    v=$(echo "$f" | tr 'a-z-' 'A-Z_')
    printf -v "EX_${v}_RPS" '%s' "$(top "ex-$f")"
    printf -v "NG_${v}_RPS" '%s' "$(top "ng-$f")"
done
OM_RATIO=$(ratio "$EX_OM_RPS" "$NG_OM_RPS")
OM_GZIP_RATIO=$(ratio "$EX_OM_GZIP_RPS" "$NG_OM_GZIP_RPS")
PB_RATIO=$(ratio "$EX_PB_RPS" "$NG_PB_RPS")
PB_GZIP_RATIO=$(ratio "$EX_PB_GZIP_RPS" "$NG_PB_GZIP_RPS")
# Memory with both encodings cached (text and protobuf), for comparison with section 4's text only.
RSS_FORMATS=$(vm_hwm "$F_PID")
stop "$F_PID"

say "3b. /metrics p99 while sweeps run back to back (poll interval 1s)"
BPORT=$(free_port)
# The sweep timeout defaults to the poll interval: lift it, or sweeps slowed by the load would fail.
start_exporter busy "$BPORT" --linq.poll-interval 1s --linq.sweep-timeout 5m
B_PID=$EXP_PID
B="http://127.0.0.1:$BPORT/metrics"
wait_sweeps "$WORK/busy.log" 1 "$SWEEP_WAIT" || die "busy exporter: no sweep (see $WORK/busy.log)"
sweeps_before=$(sweeps_done "$WORK/busy.log")
wrk_run "$WORK/wrk-busy.txt" "$LAT_SECS" "$B" -t1 -c2 --latency "${GZ[@]}"
sweeps_after=$(sweeps_done "$WORK/busy.log")
SWEEPS_DURING=$((sweeps_after - sweeps_before))
BUSY_FAILED=$(grep -c '"sweep failed' "$WORK/busy.log" || true)
P99_BUSY=$(wrk_p99 "$WORK/wrk-busy.txt")
P99_RATIO=$(ratio "$P99_BUSY" "$P99_IDLE")
RSS_BUSY=$(vm_hwm "$B_PID")
BUSY_SWEEP_MS=$(grep '"sweep complete"' "$WORK/busy.log" | grep -o '"duration_ms":[0-9]*' | cut -d: -f2 | tr '\n' ' ' | median)
stop "$B_PID"

# Peak RSS of a long-running exporter: the high-water mark over three sweeps (from the second on,
# the previous snapshot stays published while the next is built and rendered), scraped once a
# second, gzip and plain. Full mode sweeps every 15 s (the default is 60 s), so the allocator
# returns freed pages between sweeps as it would in production; the 1 s back-to-back sweeps
# under wrk above give the worst case (rss_during_sweeps_bytes).
steady_peak() { # steady_peak NAME PLAIN ARGS...: sets PEAK_BYTES; saves the last plain body as NAME.prom
    # PLAIN=1 scrapes plain beside gzip (the sweeps then keep the plain bytes); 0 scrapes gzip
    # only, as Prometheus does.
    local name=$1 plain=$2 port url _
    shift 2
    port=$(free_port)
    url="http://127.0.0.1:$port/metrics"
    start_exporter "$name" "$port" --linq.poll-interval "$MEM_INTERVAL" --linq.sweep-timeout 5m "$@"
    for _ in $(seq 1 $((SWEEP_WAIT + 120))); do
        [ "$(sweeps_done "$WORK/$name.log")" -ge 3 ] && break
        curl -s "${GZ[@]}" "$url" -o /dev/null || true
        [ "$plain" = 1 ] && { curl -s "$url" -o /dev/null || true; }
        sleep 1
    done
    wait_sweeps "$WORK/$name.log" 3 1 || die "$name exporter: fewer than 3 sweeps (see $WORK/$name.log)"
    PEAK_BYTES=$(vm_hwm "$EXP_PID")
    curl -s "${GZ[@]}" "$url" | gzip -dc >"$WORK/$name.prom"
    stop "$EXP_PID"
}
say "4. memory: 3 sweeps $MEM_INTERVAL apart, all per-chat series, scraped gzip (as Prometheus does)"
steady_peak mem 0
RSS_PEAK=$PEAK_BYTES
say "4a. memory: the same, scraped plain too (the plain bytes are kept)"
steady_peak memplain 1
RSS_PLAIN=$PEAK_BYTES
say "4b. memory: 3 sweeps $MEM_INTERVAL apart, --linq.chat-metrics=none"
steady_peak none 0 --linq.chat-metrics=none
RSS_NONE=$PEAK_BYTES
SUM_NONE=$(sum_chats "$WORK/none.prom")
NONE_INFO=$(count_series "$WORK/none.prom" linq_chat_info)
SUM_MEM=$(sum_chats "$WORK/mem.prom")

RSS_PER_CHAT=$((RSS_PEAK / CHATS))
RSS_RATIO=$(ratio "$RSS_PER_CHAT" 512)

# ---------------------------------------------------------------------------------------------
# 5. Correctness
# ---------------------------------------------------------------------------------------------
CORRECT=1
check() { # check NAME GOT WANT
    if [ "$2" != "$3" ]; then
        echo "bench/run.sh: correctness: $1 = $2, want $3" >&2
        CORRECT=0
    fi
}
check "sum(linq_chats) /metrics" "$SUM_STEADY" "$CHATS"
check "sum(linq_chats) --once" "$SUM_ONCE" "$CHATS"
check "sum(linq_chats) concurrent" "$SUM_CONC" "$CONC_CHATS"
check "sum(linq_chats) chat-metrics=none" "$SUM_NONE" "$CHATS"
check "sum(linq_chats) after 3 sweeps" "$SUM_MEM" "$CHATS"
check "linq_chat_info series" "$INFO_SERIES" "$CHATS"
check "linq_chat_info series, chat-metrics=none" "$NONE_INFO" 0
check "pages walked --once" "$ONCE_PAGES" "$PAGES"
check "curl connections for $PAGES pages" "$CURL_CONNECTS" 1
[ "$MODE" != smoke ] || "$REPO/bench/latency.sh" --smoke --bin "$BIN" >&2 || check "bench/latency.sh --smoke (see its output above)" fail pass
[ "$MODE" != smoke ] || "$REPO/bench/webhook.sh" --smoke --bin "$BIN" >&2 || check "bench/webhook.sh --smoke (see its output above)" fail pass
LOAD_END=$(loadavg)

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo
echo "linq-exporter benchmark ($MODE): $CHATS chats, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($CPU_MODEL), ${MEM_GIB} GiB RAM"
echo "checkout $REVISION, binary revision ${BIN_REVISION:-?}; load average: $LOAD_START at start, $LOAD_END at end"
printf '%-44s %16s %16s %8s %8s %6s\n' "measure" "exporter" "baseline" "ratio" "target" "result"
row() { printf '%-44s %16s %16s %8s %8s %6s\n' "$1" "$2" "$3" "$4" "$5 $6" "$(verdict "$4" "$5" "$6")"; }
row "1. sweep ${CHATS} chats (ms) vs curl" "$SWEEP_MS" "$CURL_MS" "$SWEEP_RATIO" "<=" 1.2
printf '%-44s %16s %16s %8s\n' "   --once wall incl. render+stdout (ms)" "$ONCE_WALL_MS" "$CURL_MS" "$SWEEP_WALL_RATIO"
row "2. concurrent ${CONC_NUMBERS}x$((CONC_CHATS / CONC_NUMBERS)) @${CONC_LATENCY_MS}ms (ms) vs ideal" "$CONC_MS" "$CONC_IDEAL_MS" "$CONC_RATIO" "<=" 1.3
row "3. scrape plain (req/s) vs nginx" "$EX_PLAIN_RPS" "$NG_PLAIN_RPS" "$PLAIN_RATIO" ">=" 0.8
row "   scrape gzip (req/s) vs nginx" "$EX_GZIP_RPS" "$NG_GZIP_RPS" "$GZIP_RATIO" ">=" 0.8
row "   scrape OpenMetrics (req/s) vs nginx" "$EX_OM_RPS" "$NG_OM_RPS" "$OM_RATIO" ">=" 1.0
row "   scrape OpenMetrics gzip (req/s) vs nginx" "$EX_OM_GZIP_RPS" "$NG_OM_GZIP_RPS" "$OM_GZIP_RATIO" ">=" 1.0
row "   scrape protobuf (req/s) vs nginx" "$EX_PB_RPS" "$NG_PB_RPS" "$PB_RATIO" ">=" 1.0
row "   scrape protobuf gzip (req/s) vs nginx" "$EX_PB_GZIP_RPS" "$NG_PB_GZIP_RPS" "$PB_GZIP_RATIO" ">=" 1.0
row "   p99 during sweeps vs idle (ms)" "$P99_BUSY" "$P99_IDLE" "$P99_RATIO" "<=" 1.5
row "4. peak RSS per chat (bytes) vs 512 B" "$RSS_PER_CHAT" 512 "$RSS_RATIO" "<=" 1.0
printf '%-44s %16s\n' "   peak RSS over 3 sweeps, all per-chat" "$(mib "$RSS_PEAK")"
printf '%-44s %16s\n' "   peak RSS over 3 sweeps, scraped plain too" "$(mib "$RSS_PLAIN") ($((RSS_PLAIN / CHATS)) B/chat)"
printf '%-44s %16s\n' "   peak RSS over 3 sweeps, chat-metrics=none" "$(mib "$RSS_NONE")"
printf '%-44s %16s\n' "   1st sweep RSS: walk / peak / idle after" "$(mib "$RSS_WALK") / $(mib "$RSS_FIRST") / $(mib "$RSS_STEADY")"
printf '%-44s %16s\n' "   peak RSS under wrk: idle / during sweeps" "$(mib "$RSS_LOAD") / $(mib "$RSS_BUSY")"
printf '%-44s %16s %16s %8s %8s %6s\n' "5. sum(linq_chats)" "$SUM_STEADY" "$CHATS" "" "exact" "$([ "$CORRECT" = 1 ] && echo pass || echo FAIL)"
echo
cat <<EOF
mode=$MODE
revision=$REVISION
binary_revision=${BIN_REVISION:-unknown}
chats=$CHATS
pages=$PAGES
dataset_bytes=$CURL_BYTES
nproc=$(nproc)
load_start=$LOAD_START
load_end=$LOAD_END
sweep_ms=$SWEEP_MS
curl_ms=$CURL_MS
sweep_median_ms=$SWEEP_MEDIAN_MS
curl_median_ms=$CURL_MEDIAN_MS
sweep_ratio=$SWEEP_RATIO
once_wall_ms=$ONCE_WALL_MS
once_wall_ratio=$SWEEP_WALL_RATIO
once_cpu_ms=$ONCE_CPU_MS
curl_cpu_ms=$CURL_CPU_MS
concurrent_ms=$CONC_MS
concurrent_pages=$CONC_PAGES
concurrent_ideal_ms=$CONC_IDEAL_MS
concurrent_ratio=$CONC_RATIO
metrics_series=$SERIES
metrics_plain_bytes=$PLAIN_BYTES
metrics_gzip_bytes=$GZIP_BYTES
scrape_plain_rps=$EX_PLAIN_RPS
nginx_plain_rps=$NG_PLAIN_RPS
scrape_plain_ratio=$PLAIN_RATIO
scrape_gzip_rps=$EX_GZIP_RPS
nginx_gzip_rps=$NG_GZIP_RPS
scrape_gzip_ratio=$GZIP_RATIO
scrape_openmetrics_rps=$EX_OM_RPS
nginx_openmetrics_rps=$NG_OM_RPS
scrape_openmetrics_ratio=$OM_RATIO
scrape_openmetrics_gzip_rps=$EX_OM_GZIP_RPS
nginx_openmetrics_gzip_rps=$NG_OM_GZIP_RPS
scrape_openmetrics_gzip_ratio=$OM_GZIP_RATIO
scrape_protobuf_rps=$EX_PB_RPS
nginx_protobuf_rps=$NG_PB_RPS
scrape_protobuf_ratio=$PB_RATIO
scrape_protobuf_gzip_rps=$EX_PB_GZIP_RPS
nginx_protobuf_gzip_rps=$NG_PB_GZIP_RPS
scrape_protobuf_gzip_ratio=$PB_GZIP_RATIO
openmetrics_bytes=$OM_BYTES
openmetrics_gzip_bytes=$OM_GZIP_BYTES
protobuf_bytes=$PB_BYTES
protobuf_gzip_bytes=$PB_GZIP_BYTES
rss_text_and_protobuf_bytes=$RSS_FORMATS
p99_idle_ms=$P99_IDLE
p99_sweep_ms=$P99_BUSY
p99_sweeps_during=$SWEEPS_DURING
p99_sweeps_failed=$BUSY_FAILED
p99_ratio=$P99_RATIO
busy_sweep_ms=$BUSY_SWEEP_MS
rss_walk_phase_bytes=$RSS_WALK
rss_after_sweep_bytes=$RSS_AFTER_SWEEP
rss_first_sweep_peak_bytes=$RSS_FIRST
rss_steady_bytes=$RSS_STEADY
rss_peak_bytes=$RSS_PEAK
rss_under_load_bytes=$RSS_LOAD
rss_during_sweeps_bytes=$RSS_BUSY
rss_per_chat_bytes=$RSS_PER_CHAT
rss_ratio=$RSS_RATIO
rss_none_bytes=$RSS_NONE
rss_plain_too_bytes=$RSS_PLAIN
sum_chats=$SUM_STEADY
expected_chats=$CHATS
correct=$CORRECT
elapsed_s=$(($(date +%s) - T0))
EOF
[ "$CORRECT" = 1 ]
