#!/usr/bin/env bash
# bench/scale-out.sh [CHATS] [SHARDS]: one large account swept by one exporter, then by SHARDS
# shards (--shard/--total-shards), against the simulator (no latency), each sweeping once:
# sweep time, peak RSS and the time of a gzip scrape, per pod. Defaults: 1,000,000 chats over 20
# numbers, 4 shards. Both set-ups discover the numbers (--linq.discover-numbers, concurrency 4).
# Checks that each set-up's sum(linq_chats) equals CHATS exactly (exit 1 otherwise); timings never
# fail it. Loopback only. Prints a table, then name=value lines. See docs/benchmarks.md.
#   bench/scale-out.sh --smoke   20,000 chats, 4 shards (keeps the script working)
set -euo pipefail

CHATS=1000000
SHARDS=4
if [ "${1:-}" = --smoke ]; then
    CHATS=20000
elif [ -n "${1:-}" ]; then
    CHATS=$1
    SHARDS=${2:-4}
fi
NUMBERS=20
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXE="${CARGO_TARGET_DIR:-$REPO/target}/release/linq-exporter"
# shellcheck source=bench/lib.sh disable=SC1091
. "$REPO/bench/lib.sh"
ensure_packages
[ -x "$EXE" ] || die "no binary at $EXE (cargo build --release)"
setup_work linq-scale-out
cp "$EXE" "$WORK/linq-exporter"
EXE="$WORK/linq-exporter"

SPORT=$(free_port)
say "simulator: $CHATS chats over $NUMBERS numbers"
"$EXE" simulate --listen "127.0.0.1:$SPORT" --chats "$CHATS" --numbers "$NUMBERS" \
    >"$WORK/sim.out" 2>"$WORK/sim.log" &
PIDS+=($!)
for _ in $(seq 1 1200); do grep -q '^key=' "$WORK/sim.out" && break; sleep 0.1; done
SIM=$(sed -n 's/^url=//p' "$WORK/sim.out")
SIM_KEY=$(sed -n 's/^key=//p' "$WORK/sim.out")
[ -n "$SIM" ] && [ -n "$SIM_KEY" ] || { cat "$WORK/sim.log" >&2; die "simulator did not start"; }

hwm() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status"; }
# start NAME ARGS...: a long-running exporter (one sweep per hour); sets PID_OF_<NAME>, PORT_OF_<NAME>
start() {
    local name=$1 port
    shift
    port=$(free_port)
    "$EXE" --linq.base-url "$SIM" --linq.api-key "$SIM_KEY" --web.listen-address "127.0.0.1:$port" \
        --linq.discover-numbers --linq.concurrency 4 --linq.poll-interval 1h \
        --linq.sweep-timeout 30m --log.format json "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS+=($!)
    printf -v "PID_OF_$name" '%s' "$!"
    printf -v "PORT_OF_$name" '%s' "$port"
}
# finish NAME: waits for its sweep, scrapes gzip 3 times (best time), reads its numbers
finish() {
    local name=$1 pid port t
    pid=$(eval echo "\$PID_OF_$name")
    port=$(eval echo "\$PORT_OF_$name")
    for _ in $(seq 1 36000); do
        grep -q '"sweep complete"' "$WORK/$name.log" 2>/dev/null && break
        grep -q '"sweep failed' "$WORK/$name.log" 2>/dev/null && { tail -3 "$WORK/$name.log" >&2; die "$name: sweep failed"; }
        kill -0 "$pid" 2>/dev/null || { tail -5 "$WORK/$name.log" >&2; die "$name exited"; }
        sleep 0.1
    done
    SWEEP_MS=$(grep -m1 '"sweep complete"' "$WORK/$name.log" | grep -o '"duration_ms":[0-9]*' | cut -d: -f2)
    SCRAPE_MS=
    for _ in 1 2 3; do
        t=$(curl -s -H 'Accept-Encoding: gzip' -o "$WORK/$name.gz" -w '%{time_total}' "http://127.0.0.1:$port/metrics")
        t=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000 }')
        if [ -z "$SCRAPE_MS" ] || [ "$t" -lt "$SCRAPE_MS" ]; then SCRAPE_MS=$t; fi
    done
    gzip -dc "$WORK/$name.gz" >"$WORK/$name.prom"
    CHATS_SEEN=$(awk '/^linq_chats\{/ { s += $NF } END { printf "%d", s }' "$WORK/$name.prom")
    PEAK=$(hwm "$pid")
    GZ_BYTES=$(stat -c %s "$WORK/$name.gz")
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

say "one exporter"
start one
finish one
ONE_SWEEP=$SWEEP_MS ONE_SCRAPE=$SCRAPE_MS ONE_PEAK=$PEAK ONE_CHATS=$CHATS_SEEN ONE_GZ=$GZ_BYTES
stop "$PID_OF_one"
say "   sweep $ONE_SWEEP ms, peak $(mib "$ONE_PEAK"), gzip scrape $ONE_SCRAPE ms, $ONE_CHATS chats"

say "$SHARDS shards"
for i in $(seq 0 $((SHARDS - 1))); do
    start "s$i" --shard "$i" --total-shards "$SHARDS"
done
SH_SWEEP=0 SH_SCRAPE=0 SH_PEAK=0 SH_PEAK_SUM=0 SH_CHATS=0
for i in $(seq 0 $((SHARDS - 1))); do
    finish "s$i"
    say "   shard $i: sweep $SWEEP_MS ms, peak $(mib "$PEAK"), gzip scrape $SCRAPE_MS ms, $CHATS_SEEN chats"
    [ "$SWEEP_MS" -gt "$SH_SWEEP" ] && SH_SWEEP=$SWEEP_MS
    [ "$SCRAPE_MS" -gt "$SH_SCRAPE" ] && SH_SCRAPE=$SCRAPE_MS
    [ "$PEAK" -gt "$SH_PEAK" ] && SH_PEAK=$PEAK
    SH_PEAK_SUM=$((SH_PEAK_SUM + PEAK))
    SH_CHATS=$((SH_CHATS + CHATS_SEEN))
done

printf '\n%-34s %18s %18s\n' "$CHATS chats, $NUMBERS numbers" "one exporter" "$SHARDS shards (worst)"
printf '%-34s %18s %18s\n' "sweep (ms)" "$ONE_SWEEP" "$SH_SWEEP"
printf '%-34s %18s %18s\n' "peak RSS per pod" "$(mib "$ONE_PEAK")" "$(mib "$SH_PEAK")"
printf '%-34s %18s %18s\n' "peak RSS, all pods" "$(mib "$ONE_PEAK")" "$(mib "$SH_PEAK_SUM")"
printf '%-34s %18s %18s\n' "gzip scrape of one pod (ms)" "$ONE_SCRAPE" "$SH_SCRAPE"
printf '%-34s %18s %18s\n' "sum(linq_chats)" "$ONE_CHATS" "$SH_CHATS"
cat <<EOF

chats=$CHATS
shards=$SHARDS
one_sweep_ms=$ONE_SWEEP
one_peak_rss_bytes=$ONE_PEAK
one_rss_per_chat_bytes=$((ONE_PEAK / CHATS))
one_gzip_scrape_ms=$ONE_SCRAPE
one_gzip_bytes=$ONE_GZ
shards_worst_sweep_ms=$SH_SWEEP
shards_worst_peak_rss_bytes=$SH_PEAK
shards_total_peak_rss_bytes=$SH_PEAK_SUM
shards_worst_gzip_scrape_ms=$SH_SCRAPE
EOF
[ "$ONE_CHATS" = "$CHATS" ] || die "one exporter counted $ONE_CHATS chats, not $CHATS"
[ "$SH_CHATS" = "$CHATS" ] || die "the shards counted $SH_CHATS chats together, not $CHATS"
say "sums exact: $CHATS chats in both set-ups"
