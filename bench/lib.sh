# shellcheck shell=bash
# Helpers shared by bench/run.sh and bench/probe.sh (sourced, not run).

T0=$(date +%s)
say() { printf '[bench %3ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() {
    echo "bench: $*" >&2
    exit 1
}

# ensure_packages: nginx, wrk, curl and python3 from Debian's archive when missing (needs root).
ensure_packages() {
    local need=() made_policy=0
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    if [ ${#need[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root"
        say "installing ${need[*]}"
        # Package scripts must not start a system nginx on :80. Debian's container images ship
        # this policy file already; a full system may not, so it is there only for the install.
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# setup_work NAME: a temp dir in WORK; every process recorded in PIDS is ended on exit.
PIDS=()
stop() { # stop PID: end one process this script started (TERM, then KILL after 5 s)
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        stop "$pid"
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
setup_work() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# The load average (1/5/15 min), for the report.
loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/'; }
# sample FILE NAME{LABELS}: that sample's value in an exposition file ("" when absent)
sample() { awk -v m="$2" 'index($0, m " ") == 1 { print $NF; exit }' "$1"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # wait_http URL SECONDS
    local _
    for _ in $(seq 1 $(($2 * 10))); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

# start_nginx: serves $WORK/www (dataset pages, saved /metrics bodies) per bench/nginx.conf.in;
# sets NPORT and API.
start_nginx() {
    local user=""
    mkdir -p "$WORK/www/static" "$WORK/nginx-tmp"
    NPORT=$(free_port)
    [ "$(id -u)" = 0 ] && user="user root;"
    sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$NPORT|g" -e "s|@USER@|$user|g" \
        "$REPO/bench/nginx.conf.in" >"$WORK/nginx.conf"
    "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" -t -q 2>"$WORK/nginx-t.log" ||
        { cat "$WORK/nginx-t.log" >&2; die "nginx config test failed"; }
    "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
    PIDS+=($!)
    API="http://127.0.0.1:$NPORT"
    wait_http "$API/v3/chats" 10 || die "nginx did not come up (see $WORK/nginx-error.log)"
}
