#!/usr/bin/env bash
# bench/probe.sh [CHATS] [REPS]: where a sweep's time goes. Builds bench/probe/main.rs against
# this checkout's library (in /tmp, outside the repo), generates the bench dataset, serves it with
# nginx and prints probe_<stage>_ms=N lines: decode, aggregate and render from memory, then
# fetch only, fetch+decode+aggregate (one walk, as the exporter does it) and a pipelined walk.
# Diagnostic only: not run by CI, no targets. See docs/benchmarks.md.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHATS=${1:-100000}
REPS=${2:-5}
# shellcheck source=bench/lib.sh disable=SC1091
. "$REPO/bench/lib.sh"
ensure_packages
setup_work linq-probe

# A throwaway crate depending on the library by path, with the release profile of Cargo.toml.
mkdir -p "$WORK/probe/src"
cp "$REPO/bench/probe/main.rs" "$WORK/probe/src/main.rs"
cp "$REPO/Cargo.lock" "$WORK/probe/Cargo.lock"
cat >"$WORK/probe/Cargo.toml" <<TOML
[package]
name = "linq-bench-probe"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
linq-exporter = { path = "$REPO" }
bytes = "1"
reqwest = { version = "0.12", default-features = false }
tikv-jemallocator = "0.7"
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }

[profile.release]
lto = "thin"
codegen-units = 4

[workspace]
TOML
export CARGO_TARGET_DIR=${BENCH_PROBE_TARGET:-/tmp/linq-bench-probe-target}
say "building the probe (target dir $CARGO_TARGET_DIR)"
cargo build --release --offline --manifest-path "$WORK/probe/Cargo.toml" 2>"$WORK/build.log" ||
    cargo build --release --manifest-path "$WORK/probe/Cargo.toml" 2>"$WORK/build.log" ||
    { tail -30 "$WORK/build.log" >&2; die "probe build failed"; }

say "generating $CHATS chats"
python3 "$REPO/bench/gen_dataset.py" --out "$WORK/www" --chats "$CHATS" >&2
start_nginx
say "load average $(cut -d' ' -f1-3 /proc/loadavg); running $REPS reps"
"$CARGO_TARGET_DIR/release/linq-bench-probe" "$WORK/www" "$API" "$REPS"
