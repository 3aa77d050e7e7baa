#!/usr/bin/env bash
# Large accounts at real latency: sweep time of a long-running exporter against the simulator
# (100,000 chats over 10 numbers, 100 ms per request), compared with the floor that latency sets,
# measured in the same run. Run 1: one unfiltered walk, default flags (poll interval 60 s, shorter
# than the ~100 s sweep). Run 2: --linq.discover-numbers --linq.concurrency 10 (10 `from` walks in
# parallel); its per-number chat counts must equal run 1's exactly.
#
#   bench/latency.sh [--bin PATH]            full: about 5 minutes; fails when a target misses
#   bench/latency.sh --smoke [--bin PATH]    2,000 chats at 10 ms, interval 100ms; a few seconds.
#                                            Ratios are reported, not enforced (for CI)
#
# The binary: --bin PATH, else $LINQ_EXPORTER_BIN, else target/release/linq-exporter (under
# $CARGO_TARGET_DIR when set); build it first. Needs curl, awk and python3; 127.0.0.1 only.
# Exits non-zero when a sweep fails, the counts differ, or (full mode) a ratio misses its target.
# BENCH_KEEP=1 keeps the temp dir. See docs/benchmarks.md, "Large accounts at real latency".
set -euo pipefail

MODE=full
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${LINQ_EXPORTER_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/linq-exporter}
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) MODE=smoke ;;
        --bin)
            [ $# -ge 2 ] || { echo "bench/latency.sh: --bin needs a path" >&2; exit 2; }
            BIN=$2
            shift
            ;;
        --bin=*) BIN=${1#--bin=} ;;
        -h | --help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench/latency.sh: unknown argument: $1 (use --smoke, --bin PATH or nothing)" >&2
            exit 2
            ;;
    esac
    shift
done

NUMBERS=10
PAGE_SIZE=100 # the exporter's default --linq.page-size
SWEEPS=2      # sweeps each run must complete (and publish) before it is read
if [ "$MODE" = smoke ]; then
    CHATS=2000 LATENCY_MS=10 DEADLINE_S=30 ENFORCE=0
    INTERVAL_ARGS=(--linq.poll-interval 100ms) # still shorter than the unfiltered sweep (~0.2 s)
else
    CHATS=100000 LATENCY_MS=100 DEADLINE_S=480 ENFORCE=1
    INTERVAL_ARGS=() # the default, 60 s: the unfiltered sweep (~100 s) outlasts it
fi
TARGET1=1.05 TARGET2=1.10

# shellcheck source=bench/lib.sh disable=SC1091
. "$REPO/bench/lib.sh"
for tool in curl awk python3; do command -v "$tool" >/dev/null 2>&1 || die "missing $tool"; done
[ -x "$BIN" ] || die "no binary at $BIN (cargo build --release --locked, or pass --bin PATH)"
setup_work linq-latency
# Run a copy: a rebuild during the run must not swap the binary under it.
cp "$BIN" "$WORK/linq-exporter"
EXE="$WORK/linq-exporter"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.3f\n", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "nan") print "n/a"; else print (v + 0 <= t + 0) ? "pass" : "miss" }'; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f\n", ms / 1000 }'; }
sum_chats() { awk '/^linq_chats\{/ { s += $NF } END { printf "%d\n", s }' "$1"; }
# per_number FILE: "NUMBER CHATS" lines, sorted: linq_chats summed by its phone_number label
per_number() {
    awk '/^linq_chats\{/ && match($0, /phone_number="[^"]*"/) {
        s[substr($0, RSTART + 14, RLENGTH - 15)] += $NF
    } END { for (p in s) printf "%s %d\n", p, s[p] }' "$1" | sort
}
sweep_ms_list() { grep '"sweep complete"' "$1" | grep -o '"duration_ms":[0-9]*' | cut -d: -f2 | tr '\n' ' ' | sed 's/ $//'; }

REVISION=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
LOAD_START=$(loadavg)
say "mode=$MODE chats=$CHATS numbers=$NUMBERS latency=${LATENCY_MS}ms nproc=$(nproc) load=$LOAD_START bin=$BIN"

# ---------------------------------------------------------------------------------------------
# The simulator: latency applies to every request (chat pages and GET /v3/phone_numbers alike)
# ---------------------------------------------------------------------------------------------
SPORT=$(free_port)
"$EXE" simulate --listen "127.0.0.1:$SPORT" --chats "$CHATS" --numbers "$NUMBERS" \
    --latency "${LATENCY_MS}ms" >"$WORK/sim.out" 2>"$WORK/sim.log" &
PIDS+=($!)
for _ in $(seq 1 300); do grep -q '^key=' "$WORK/sim.out" && break; sleep 0.1; done
SIM=$(sed -n 's/^url=//p' "$WORK/sim.out")
SIM_KEY=$(sed -n 's/^key=//p' "$WORK/sim.out")
[ -n "$SIM" ] && [ -n "$SIM_KEY" ] || { cat "$WORK/sim.log" >&2; die "simulator did not start"; }

# What one request costs a plain client: CURL_REQS sequential curl requests over one keep-alive
# connection, mean time_total in ms. The simulator's sleep, building the page and the transfer
# put it a little above the latency. The floors stay pages x latency; beside them the table
# reports the sweep against a plain client making the same requests (each sweep's
# GET /v3/phone_numbers, then the walks): for run 1 estimated from curl's time per request, for
# run 2 measured with bench/latency_walk.py.
CURL_REQS=20
curl_page_ms() { # curl_page_ms QUERY
    {
        echo silent
        echo "header = \"Authorization: Bearer $SIM_KEY\""
        # shellcheck disable=SC2028 # the \n is for curl
        echo 'write-out = "%{time_total}\n"'
        for _ in $(seq 1 "$CURL_REQS"); do
            echo "url = \"$SIM/v3/chats?$1\""
            echo 'output = "/dev/null"'
        done
    } >"$WORK/curl.cfg"
    curl -K "$WORK/curl.cfg" | awk '{ s += $1 } END { if (NR) printf "%.2f\n", s * 1000 / NR; else print 0 }'
}
FIRST_NUMBER=$(curl -s -H "Authorization: Bearer $SIM_KEY" "$SIM/v3/phone_numbers" | grep -o '"phone_number":"[^"]*"' | head -1 | cut -d'"' -f4)
[ -n "$FIRST_NUMBER" ] || die "simulator: GET /v3/phone_numbers listed no number"
CURL_ALL_MS=$(curl_page_ms "limit=$PAGE_SIZE")
CURL_FROM_MS=$(curl_page_ms "limit=$PAGE_SIZE&from=${FIRST_NUMBER/+/%2B}")
say "curl, $CURL_REQS sequential requests each: unfiltered page $CURL_ALL_MS ms, from page $CURL_FROM_MS ms (latency $LATENCY_MS ms)"

# run_exporter NAME ARGS...: a long-running exporter until it has completed $SWEEPS sweeps (a
# deadline of $DEADLINE_S s; a failed sweep or an exited process ends the wait), then one scrape
# of /metrics into NAME.prom. Sets RUN_OK (1 when the sweeps completed in time) and RUN_WAIT_S.
run_exporter() {
    local name=$1 port pid t0 done_n
    shift
    port=$(free_port)
    "$EXE" --linq.base-url "$SIM" --linq.api-key "$SIM_KEY" --web.listen-address "127.0.0.1:$port" \
        --log.format json "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    pid=$!
    PIDS+=("$pid")
    t0=$(date +%s)
    RUN_OK=0
    while [ $(($(date +%s) - t0)) -lt "$DEADLINE_S" ]; do
        done_n=$(grep -c '"sweep complete"' "$WORK/$name.log" 2>/dev/null || true)
        if [ "${done_n:-0}" -ge "$SWEEPS" ]; then RUN_OK=1; break; fi
        if grep -q '"sweep failed' "$WORK/$name.log" 2>/dev/null; then
            grep '"sweep failed' "$WORK/$name.log" | head -3 >&2
            break
        fi
        kill -0 "$pid" 2>/dev/null || { tail -5 "$WORK/$name.log" >&2; break; }
        sleep 0.2
    done
    RUN_WAIT_S=$(($(date +%s) - t0))
    [ "$RUN_OK" = 1 ] || say "   $name: $SWEEPS sweeps not complete after ${RUN_WAIT_S}s (see $WORK/$name.log)"
    curl -sf --compressed -o "$WORK/$name.prom" "http://127.0.0.1:$port/metrics" || : >"$WORK/$name.prom"
    stop "$pid"
}

FAIL=0
fail() {
    echo "bench/latency.sh: $*" >&2
    FAIL=1
}

# ---------------------------------------------------------------------------------------------
# Run 1: one unfiltered walk, default flags
# ---------------------------------------------------------------------------------------------
say "run 1: unfiltered walk, default flags ${INTERVAL_ARGS[*]}; waiting for $SWEEPS sweeps (deadline ${DEADLINE_S}s)"
run_exporter run1 "${INTERVAL_ARGS[@]}"
R1_OK=$RUN_OK
R1_SWEEPS=$(sweep_ms_list "$WORK/run1.log")
R1_MAX=$(echo "$R1_SWEEPS" | tr ' ' '\n' | sort -n | tail -1)
R1_PAGES=$(sample "$WORK/run1.prom" linq_poll_pages)
R1_SUCCESS=$(sample "$WORK/run1.prom" 'linq_polls_total{result="success"}')
R1_FAILURE=$(sample "$WORK/run1.prom" 'linq_polls_total{result="failure"}')
R1_GAUGE=$(sample "$WORK/run1.prom" linq_poll_duration_seconds)
R1_SUM=$(sum_chats "$WORK/run1.prom")
per_number "$WORK/run1.prom" >"$WORK/run1.numbers"
R1_PAGES_WANT=$(((CHATS + PAGE_SIZE - 1) / PAGE_SIZE))
R1_FLOOR_MS=$((R1_PAGES_WANT * LATENCY_MS))
R1_RATIO=$(ratio "${R1_MAX:-0}" "$R1_FLOOR_MS")
R1_CLIENT_MS=$(awk -v p="$((R1_PAGES_WANT + 1))" -v c="$CURL_ALL_MS" 'BEGIN { printf "%d\n", p * c }')
R1_CLIENT_RATIO=$(ratio "${R1_MAX:-0}" "$R1_CLIENT_MS")
say "   sweeps ${R1_SWEEPS:-none} ms; /metrics: pages=$R1_PAGES success=$R1_SUCCESS failure=${R1_FAILURE:-0} duration=${R1_GAUGE}s sum(linq_chats)=$R1_SUM"

# Each number's pages, from run 1's per-number counts: the floor of run 2 is the longest walk.
NUM_PAGES=$(awk -v ps="$PAGE_SIZE" '{ printf "%d ", int(($2 + ps - 1) / ps) }' "$WORK/run1.numbers")
R2_LONGEST=$(echo "$NUM_PAGES" | tr ' ' '\n' | sort -n | tail -1)
R2_PAGES_WANT=$(echo "$NUM_PAGES" | tr ' ' '\n' | awk '{ s += $1 } END { print s + 0 }')
R2_FLOOR_MS=$((${R2_LONGEST:-0} * LATENCY_MS))

# ---------------------------------------------------------------------------------------------
# Run 2: the account's numbers discovered and walked in parallel
# ---------------------------------------------------------------------------------------------
# The baseline for run 2: a plain client making the same requests (GET /v3/phone_numbers, then
# the 10 walks in parallel, reading each cursor from the body's tail). Best of 2.
FROM_LIST=$(cut -d' ' -f1 "$WORK/run1.numbers" | paste -sd, -)
client_ms=()
for _ in 1 2; do
    out=$(python3 "$REPO/bench/latency_walk.py" --base-url "$SIM" --key "$SIM_KEY" --limit "$PAGE_SIZE" --from "$FROM_LIST") ||
        die "bench/latency_walk.py failed"
    client_ms+=("$(echo "$out" | sed -n 's/^ms=\([0-9]*\).*/\1/p')")
    CLIENT_PAGES=$(echo "$out" | sed -n 's/.*pages=//p')
done
R2_CLIENT_MS=$(printf '%s\n' "${client_ms[@]}" | sort -n | head -1)
say "client baseline (bench/latency_walk.py, $NUMBERS walks in parallel): ${client_ms[*]} ms, $CLIENT_PAGES pages"
say "run 2: --linq.discover-numbers --linq.concurrency $NUMBERS ${INTERVAL_ARGS[*]}; waiting for $SWEEPS sweeps"
run_exporter run2 --linq.discover-numbers --linq.concurrency "$NUMBERS" "${INTERVAL_ARGS[@]}"
R2_OK=$RUN_OK
R2_SWEEPS=$(sweep_ms_list "$WORK/run2.log")
R2_MAX=$(echo "$R2_SWEEPS" | tr ' ' '\n' | sort -n | tail -1)
R2_PAGES=$(sample "$WORK/run2.prom" linq_poll_pages)
R2_SUCCESS=$(sample "$WORK/run2.prom" 'linq_polls_total{result="success"}')
R2_FAILURE=$(sample "$WORK/run2.prom" 'linq_polls_total{result="failure"}')
R2_GAUGE=$(sample "$WORK/run2.prom" linq_poll_duration_seconds)
R2_SUM=$(sum_chats "$WORK/run2.prom")
per_number "$WORK/run2.prom" >"$WORK/run2.numbers"
R2_RATIO=$(ratio "${R2_MAX:-0}" "$R2_FLOOR_MS")
R2_CLIENT_RATIO=$(ratio "${R2_MAX:-0}" "$R2_CLIENT_MS")
say "   sweeps ${R2_SWEEPS:-none} ms; /metrics: pages=$R2_PAGES success=$R2_SUCCESS failure=${R2_FAILURE:-0} duration=${R2_GAUGE}s sum(linq_chats)=$R2_SUM"

# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
for r in 1 2; do
    ok_var=R${r}_OK success_var=R${r}_SUCCESS failure_var=R${r}_FAILURE
    [ "${!ok_var}" = 1 ] || fail "run $r: $SWEEPS sweeps did not complete within ${DEADLINE_S}s"
    [ "${!success_var:-0}" -ge "$SWEEPS" ] 2>/dev/null ||
        fail "run $r: linq_polls_total{result=\"success\"} = ${!success_var:-absent}, want >= $SWEEPS"
    [ "${!failure_var:-0}" = 0 ] || fail "run $r: linq_polls_total{result=\"failure\"} = ${!failure_var}, want 0"
done
FAIL_BEFORE_COUNTS=$FAIL
FAIL=0
[ "$R1_PAGES" = "$R1_PAGES_WANT" ] || fail "run 1: linq_poll_pages = $R1_PAGES, want $R1_PAGES_WANT"
[ "$R2_PAGES" = "$R2_PAGES_WANT" ] || fail "run 2: linq_poll_pages = $R2_PAGES, want $R2_PAGES_WANT (sum of each number's pages)"
[ "$CLIENT_PAGES" = "$R2_PAGES_WANT" ] || fail "bench/latency_walk.py walked $CLIENT_PAGES pages, want $R2_PAGES_WANT"
[ "$R1_SUM" = "$CHATS" ] || fail "run 1: sum(linq_chats) = $R1_SUM, want $CHATS"
[ "$R2_SUM" = "$R1_SUM" ] || fail "run 2: sum(linq_chats) = $R2_SUM, run 1 had $R1_SUM"
[ "$(wc -l <"$WORK/run1.numbers")" = "$NUMBERS" ] || fail "run 1: $(wc -l <"$WORK/run1.numbers") phone_number values, want $NUMBERS"
if ! cmp -s "$WORK/run1.numbers" "$WORK/run2.numbers"; then
    fail "per-number linq_chats differ between run 1 and run 2:"
    diff "$WORK/run1.numbers" "$WORK/run2.numbers" | sed 's/^/   /' >&2 || true
fi
COUNTS_FAIL=$FAIL
FAIL=$((FAIL | FAIL_BEFORE_COUNTS))
V1=$(verdict "$R1_RATIO" "$TARGET1")
V2=$(verdict "$R2_RATIO" "$TARGET2")
if [ "$ENFORCE" = 1 ]; then
    [ "$V1" = pass ] || fail "run 1: sweep/floor = $R1_RATIO, target <= $TARGET1"
    [ "$V2" = pass ] || fail "run 2: sweep/floor = $R2_RATIO, target <= $TARGET2"
else
    V1="$V1*" V2="$V2*"
fi
LOAD_END=$(loadavg)
BIN_REVISION=$(grep -o '^linq_exporter_build_info{[^}]*revision="[^"]*"' "$WORK/run1.prom" | sed 's/.*revision="//; s/"$//' || true)

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
list_s() { for ms in $1; do printf '%s ' "$(secs "$ms")"; done | sed 's/ $//'; }
echo
echo "linq-exporter at real latency ($MODE): $CHATS chats over $NUMBERS numbers, ${LATENCY_MS} ms per request, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "$(nproc) cores ($CPU_MODEL); checkout $REVISION, binary revision ${BIN_REVISION:-?}; load average $LOAD_START at start, $LOAD_END at end"
F='%-34s %6s %8s %-18s %8s %7s %7s %6s %9s\n'
# shellcheck disable=SC2059
{
    printf "$F" run pages "floor s" "sweeps s" "max s" ratio target result "vs client"
    printf "$F" "1. unfiltered, default flags" "$R1_PAGES" "$(secs "$R1_FLOOR_MS")" "$(list_s "$R1_SWEEPS")" \
        "$(secs "${R1_MAX:-0}")" "$R1_RATIO" "<=$TARGET1" "$V1" "$R1_CLIENT_RATIO"
    printf "$F" "2. discover-numbers, concurrency $NUMBERS" "$R2_PAGES" "$(secs "$R2_FLOOR_MS")" "$(list_s "$R2_SWEEPS")" \
        "$(secs "${R2_MAX:-0}")" "$R2_RATIO" "<=$TARGET2" "$V2" "$R2_CLIENT_RATIO"
    printf "$F" "   sum(linq_chats), per number" "" "" "$R1_SUM = $R2_SUM" "" "" exact \
        "$([ "$COUNTS_FAIL" = 0 ] && echo pass || echo FAIL)" ""
}
echo "floor 1 = $R1_PAGES_WANT pages x ${LATENCY_MS} ms; floor 2 = the largest number's $R2_LONGEST pages x ${LATENCY_MS} ms"
echo "vs client: max sweep / a plain client's time for the same requests (GET /v3/phone_numbers, then the walks): run 1 estimated"
echo "   as (1 + $R1_PAGES_WANT) x curl's mean request time ($CURL_ALL_MS ms); run 2 measured, bench/latency_walk.py (best of 2: ${client_ms[*]} ms)"
[ "$ENFORCE" = 1 ] || echo "* smoke: ratios reported, not enforced"
echo
cat <<EOF
mode=$MODE
revision=$REVISION
binary_revision=${BIN_REVISION:-unknown}
chats=$CHATS
numbers=$NUMBERS
latency_ms=$LATENCY_MS
nproc=$(nproc)
load_start=$LOAD_START
load_end=$LOAD_END
curl_page_ms=$CURL_ALL_MS
curl_from_page_ms=$CURL_FROM_MS
run1_pages=$R1_PAGES
run1_floor_ms=$R1_FLOOR_MS
run1_sweeps_ms=$R1_SWEEPS
run1_max_ms=${R1_MAX:-}
run1_ratio=$R1_RATIO
run1_client_ms=$R1_CLIENT_MS
run1_client_ratio=$R1_CLIENT_RATIO
run1_polls_success=${R1_SUCCESS:-0}
run1_polls_failure=${R1_FAILURE:-0}
run1_poll_duration_seconds=${R1_GAUGE:-}
run1_sum_chats=$R1_SUM
run2_pages=$R2_PAGES
run2_number_pages=${NUM_PAGES% }
run2_floor_ms=$R2_FLOOR_MS
run2_sweeps_ms=$R2_SWEEPS
run2_max_ms=${R2_MAX:-}
run2_ratio=$R2_RATIO
run2_client_ms=$R2_CLIENT_MS
run2_client_ratio=$R2_CLIENT_RATIO
run2_polls_success=${R2_SUCCESS:-0}
run2_polls_failure=${R2_FAILURE:-0}
run2_poll_duration_seconds=${R2_GAUGE:-}
run2_sum_chats=$R2_SUM
per_number_chats=$(tr ' ' '=' <"$WORK/run1.numbers" | tr '\n' ' ' | sed 's/ $//')
result=$([ "$FAIL" = 0 ] && echo pass || echo fail)
elapsed_s=$(($(date +%s) - T0))
EOF
[ "$FAIL" = 0 ]
