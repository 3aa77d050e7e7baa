#!/usr/bin/env bash
# Fuzzes page decoding plus snapshot building and rendering (fuzz/fuzz_targets/page_snapshot.rs,
# the default) or the webhook envelope decoder and verifier (fuzz/fuzz_targets/webhook_envelope.rs):
# any bytes in, no panic.
#
#   scripts/fuzz.sh [SECONDS [TARGET]]  build, then fuzz TARGET for SECONDS (default 60) on one core
#   scripts/fuzz.sh --build-only   build the target only (no run)
#   scripts/fuzz.sh --check        type-check the target only (plain `cargo check`, no sanitizer,
#                                  no cargo-fuzz; about 2 min from clean): catches API drift
#
# Installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`). Works on stable Rust:
# cargo-fuzz needs -Z flags, which RUSTC_BOOTSTRAP=1 lets stable accept. The target is built
# with AddressSanitizer; if that build fails the script falls back to no sanitizer (the Rust
# code itself is memory safe, so a panic is still caught either way).
#
# The corpus is fuzz/corpus/page_snapshot (gitignored), seeded on every run from fuzz/seeds/ and
# tests/fixtures/*.json; it grows from run to run. A crash input is written to
# fuzz/artifacts/page_snapshot/ and the libFuzzer log to fuzz/artifacts/page_snapshot.log.
#
# Exits 0 when the run ends with no crash, 1 on a crash (panic, timeout, OOM), 2 on a usage or
# build error. The last lines are a summary: executions, corpus size, coverage, crashes.
#
# Environment:
#   FUZZ_SANITIZER   address (default) or none
#   FUZZ_MAX_LEN     largest input libFuzzer generates, bytes (default 16384)
#   FUZZ_TIMEOUT     seconds one input may take before it counts as a hang (default 10)
#   FUZZ_BUILD_TIMEOUT  bound on the build, seconds (default 3600)

set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
TARGET=page_snapshot
SECONDS_TO_RUN=60
BUILD_ONLY=0

case "${1:-}" in
    --build-only) BUILD_ONLY=1 ;;
    --check)
        exec timeout -k 30 1800 cargo check --manifest-path fuzz/Cargo.toml --locked
        ;;
    -h | --help)
        sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *)
        if [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 > 0)); then
            SECONDS_TO_RUN=$((10#$1))
            TARGET=${2:-page_snapshot}
        else
            echo "usage: $0 [SECONDS [TARGET] | --build-only | --check]" >&2
            exit 2
        fi
        ;;
esac

SANITIZER=${FUZZ_SANITIZER:-address}
MAX_LEN=${FUZZ_MAX_LEN:-16384}
UNIT_TIMEOUT=${FUZZ_TIMEOUT:-10}
BUILD_TIMEOUT=${FUZZ_BUILD_TIMEOUT:-3600}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! command -v cargo-fuzz >/dev/null 2>&1 && [[ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]]; then
    echo "fuzz: installing cargo-fuzz"
    if ! timeout 1800 cargo install cargo-fuzz --locked; then
        echo "fuzz: cargo install cargo-fuzz failed" >&2
        exit 2
    fi
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

BUILD_LOG=$(mktemp /tmp/linq-fuzz-build.XXXXXX)
trap 'rm -f "$BUILD_LOG"' EXIT
build() {
    timeout -k 30 "$BUILD_TIMEOUT" cargo fuzz build -O -s "$1" "$TARGET" 2>&1 | tee "$BUILD_LOG"
    return "${PIPESTATUS[0]}"
}

start=$(date +%s)
if ! build "$SANITIZER"; then
    if grep -qE '^error(\[E[0-9]+\])?: |could not compile' "$BUILD_LOG"; then
        # A compile error in the exporter or the target: no sanitizer would change that.
        echo "fuzz: build failed (compile error)" >&2
        exit 2
    elif [[ $SANITIZER != none ]]; then
        echo "fuzz: the $SANITIZER build failed; retrying with no sanitizer" >&2
        SANITIZER=none
        if ! build none; then
            echo "fuzz: build failed" >&2
            exit 2
        fi
    else
        echo "fuzz: build failed" >&2
        exit 2
    fi
fi
echo "fuzz: built $TARGET (sanitizer $SANITIZER) in $(($(date +%s) - start)) s"
if ((BUILD_ONLY)); then
    exit 0
fi

CORPUS=fuzz/corpus/$TARGET
ARTIFACTS=fuzz/artifacts/$TARGET
LOG=fuzz/artifacts/$TARGET.log
mkdir -p "$CORPUS" "$ARTIFACTS"
# Seeds: copied under their own names, so re-running never duplicates them.
for f in fuzz/seeds/* tests/fixtures/*.json; do
    [[ -f $f ]] && cp -f "$f" "$CORPUS/seed-$(basename "$f")"
done

list_findings() {
    find "$ARTIFACTS" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | sort
}
before=$(list_findings)
corpus_before=$(find "$CORPUS" -type f | wc -l)

echo "fuzz: running $TARGET for $SECONDS_TO_RUN s on one core (log: $LOG)"
# One process, one job (no -jobs/-workers): the run keeps to one core. The outer timeout only
# bounds a wedged run; libFuzzer stops itself at -max_total_time.
timeout -k 30 $((SECONDS_TO_RUN + 300)) \
    cargo fuzz run -O -s "$SANITIZER" "$TARGET" "$CORPUS" -- \
    -max_total_time="$SECONDS_TO_RUN" \
    -max_len="$MAX_LEN" \
    -timeout="$UNIT_TIMEOUT" \
    -rss_limit_mb=2048 \
    -dict=fuzz/$TARGET.dict \
    -print_final_stats=1 \
    >"$LOG" 2>&1
rc=$?

if ! grep -q '^INFO: Seed:' "$LOG"; then
    # cargo fuzz run rebuilds when the sources changed since the build above.
    echo "fuzz: the target never started (exit $rc); the end of the log:" >&2
    tail -40 "$LOG" >&2
    exit 2
fi

after=$(list_findings)
new_findings=$(comm -13 <(printf '%s\n' "$before" | sed '/^$/d') <(printf '%s\n' "$after" | sed '/^$/d'))
crashes=$(printf '%s\n' "$new_findings" | sed '/^$/d' | wc -l)

final_stat() { sed -n "s/^stat::$1: *//p" "$LOG" | tail -1; }
execs=$(final_stat number_of_executed_units)
execs_per_sec=$(final_stat average_exec_per_sec)
new_units=$(final_stat new_units_added)
peak_rss=$(final_stat peak_rss_mb)
last_status=$(grep -E '^#[0-9]+' "$LOG" | tail -1)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last_status")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last_status")
corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last_status")
corpus_files=$(find "$CORPUS" -type f | wc -l)
corpus_bytes=$(du -sb "$CORPUS" | cut -f1)

if ((crashes > 0)) || ((rc != 0)); then
    echo
    echo "fuzz: FAILURE (exit $rc); the end of the log:"
    grep -nE -A1 "panicked at|ERROR: libFuzzer|SUMMARY:|Test unit written|Failing input|ERROR: AddressSanitizer" "$LOG" | head -20
    tail -40 "$LOG"
    for f in $new_findings; do
        echo
        echo "fuzz: input $f ($(stat -c %s "$f" 2>/dev/null || wc -c <"$f") bytes), base64:"
        base64 -w 76 "$f" | head -40
        echo "fuzz: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s $SANITIZER $TARGET $f"
    done
fi

echo
echo "fuzz: target $TARGET, sanitizer $SANITIZER, $SECONDS_TO_RUN s, finished $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "fuzz: executions ${execs:-?} (${execs_per_sec:-?}/s), peak RSS ${peak_rss:-?} MB"
echo "fuzz: corpus ${corp:-?} (units/size libFuzzer kept), directory $corpus_files files, $corpus_bytes bytes ($corpus_before files before; ${new_units:-?} units added)"
echo "fuzz: coverage cov ${cov:-?} ft ${ft:-?}"
echo "fuzz: crashes $crashes"
if ((crashes > 0)) || ((rc != 0)); then
    exit 1
fi
