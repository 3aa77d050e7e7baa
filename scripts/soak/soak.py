#!/usr/bin/env python3
"""Soak driver for scripts/soak.sh: concurrent scrapers against a running exporter, RSS samples
from /proc, and a report.

    soak.py --url http://127.0.0.1:PORT --pid PID --duration SECONDS [--warmup SECONDS]
            [--scrapers 8] [--pause 0.25] [--sample-every 5] [--slow-ms 100]

The scrapers run for the whole duration (warm-up included); half ask for gzip and half do not,
and half keep their connection alive while the other half open a new one per scrape, like
Prometheus servers of different setups. Every response is checked (status 200, right
Content-Encoding, gzip that decompresses, the exposition's `linq_up` line); anything else is a
failed scrape. RSS (VmRSS of /proc/PID/status) is sampled every few seconds.

Exit status: 0 when no scrape failed, the exporter stayed up, and RSS grew less than the allowed
percentage from the end of the warm-up to the end of the run; 1 otherwise; 2 on a usage error.
Standard library only; only 127.0.0.1 traffic.
"""

import argparse
import gzip
import http.client
import os
import re
import statistics
import sys
import threading
import time
import urllib.parse


def log(msg):
    print(f"soak: {msg}", flush=True)


def read_status(pid):
    """VmRSS and VmHWM in KiB, thread count, open fds; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            text = f.read()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    if fields.get("State", "").startswith("Z"):
        return None
    # utime and stime are fields 14 and 15; the command name (field 2) may contain spaces.
    after = stat.rsplit(")", 1)[1].split()
    cpu_ticks = int(after[11]) + int(after[12])
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "hwm_kib": int(fields["VmHWM"].split()[0]),
        "threads": int(fields["Threads"]),
        "fds": fds,
        "cpu_s": cpu_ticks / os.sysconf("SC_CLK_TCK"),
    }


class Scraper(threading.Thread):
    def __init__(self, index, host, port, path, use_gzip, keep_alive, pause, stop):
        super().__init__(name=f"scraper-{index}", daemon=True)
        self.index = index
        self.host, self.port, self.path = host, port, path
        self.use_gzip = use_gzip
        self.keep_alive = keep_alive
        self.pause = pause
        self.stop = stop
        self.conn = None
        self.lock = threading.Lock()
        # (start, seconds, bytes on the wire, (connect, to first byte, body) seconds) per good
        # scrape; (time, reason) per failure.
        self.ok = []
        self.failures = []

    def mode(self):
        return ("gzip" if self.use_gzip else "plain") + ("/keep-alive" if self.keep_alive else "/new-conn")

    def scrape_once(self):
        headers = {"User-Agent": "linq-exporter-soak"}
        if self.use_gzip:
            headers["Accept-Encoding"] = "gzip"
        if not self.keep_alive:
            headers["Connection"] = "close"
        started = time.monotonic()
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            self.conn.connect()
        connected = time.monotonic()
        self.conn.request("GET", self.path, headers=headers)
        resp = self.conn.getresponse()
        first_byte = time.monotonic()
        body = resp.read()
        elapsed = time.monotonic() - started
        phases = (connected - started, first_byte - connected, elapsed - (first_byte - started))
        if not self.keep_alive or resp.will_close:
            self.conn.close()
            self.conn = None
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        encoding = resp.getheader("Content-Encoding", "")
        if self.use_gzip:
            if encoding != "gzip":
                raise ValueError(f"asked for gzip, got Content-Encoding {encoding!r}")
            text = gzip.decompress(body)
        else:
            if encoding:
                raise ValueError(f"did not ask for gzip, got Content-Encoding {encoding!r}")
            text = body
        if b"\nlinq_up " not in text and not text.startswith(b"linq_up "):
            raise ValueError("no linq_up line in the exposition")
        if not text.endswith(b"\n"):
            raise ValueError("exposition does not end with a newline")
        return started, elapsed, len(body), phases

    def run(self):
        while not self.stop.is_set():
            try:
                self.ok.append(self.scrape_once())
            except Exception as e:  # every failure is recorded, none stops the run
                self.failures.append((time.monotonic(), f"{type(e).__name__}: {e}"))
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
            self.stop.wait(self.pause)
        if self.conn is not None:
            self.conn.close()


class StallMonitor(threading.Thread):
    """Every 20 ms: how late this (scraping) process woke up, and how long the exporter's
    threads have waited for a CPU so far (run-queue delay, /proc/PID/task/*/schedstat). A slow
    scrape during which the exporter sat runnable but unscheduled was the machine being busy,
    not the exporter being slow."""

    TICK = 0.02

    def __init__(self, stop, pid):
        super().__init__(name="stall-monitor", daemon=True)
        self.stop = stop
        self.pid = pid
        self.stalls = []  # (woke at, seconds late) for every wake-up later than 50 ms
        self.waits = []  # (time, cumulative run-queue wait of the exporter's threads, seconds)
        self.per_task = {}
        self.cum = 0.0

    def run_delay(self):
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        seen = {}
        for tid in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat", encoding="ascii") as f:
                    seen[tid] = int(f.read().split()[1]) / 1e9
            except (OSError, ValueError, IndexError):
                continue
        for tid, wait in seen.items():
            self.cum += max(0.0, wait - self.per_task.get(tid, 0.0))
        self.per_task = seen
        self.waits.append((time.monotonic(), self.cum))

    def run(self):
        self.run_delay()
        while not self.stop.is_set():
            before = time.monotonic()
            time.sleep(self.TICK)
            late = time.monotonic() - before - self.TICK
            if late > 0.05:
                self.stalls.append((time.monotonic(), late))
            self.run_delay()

    def exporter_wait(self, start, end):
        """Run-queue wait of the exporter's threads between the last tick before `start` and
        the first tick after `end`."""
        if not self.waits:
            return 0.0
        before = [c for t, c in self.waits if t <= start]
        after = [c for t, c in self.waits if t >= end]
        lo = before[-1] if before else self.waits[0][1]
        hi = after[0] if after else self.waits[-1][1]
        return hi - lo

    def overlapping(self, start, end):
        """The longest stall whose late window [woke - late, woke] overlaps [start, end]."""
        worst = 0.0
        for woke, late in self.stalls:
            if woke - late <= end and woke >= start:
                worst = max(worst, late)
        return worst


def loadavg():
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def fetch(host, port, path, timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def series_sum(text, name, label_filter=None):
    """Sum of the samples of `name` whose label set contains `label_filter` (a substring)."""
    total = 0.0
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        if label_filter and label_filter not in (m.group(2) or ""):
            continue
        try:
            total += float(m.group(3))
        except ValueError:
            pass
    return total


def by_label(text, name, label):
    out = {}
    pat = re.compile(label + r'="([^"]*)"')
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        lm = pat.search(m.group(2) or "")
        key = lm.group(1) if lm else ""
        out[key] = out.get(key, 0.0) + float(m.group(3))
    return {k: int(v) for k, v in sorted(out.items()) if v}


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--scrapers", type=int, default=8)
    ap.add_argument("--pause", type=float, default=0.25, help="seconds between a scraper's scrapes")
    ap.add_argument("--sample-every", type=float, default=5.0)
    ap.add_argument("--slow-ms", type=float, default=100.0)
    ap.add_argument("--max-growth", type=float, default=10.0, help="allowed RSS growth after warm-up, %%")
    ap.add_argument("--samples-csv", default=None, help="write every RSS sample to this CSV file")
    args = ap.parse_args()

    url = urllib.parse.urlsplit(args.url)
    if url.hostname not in ("127.0.0.1", "localhost") or not url.port:
        print("soak: --url must be http://127.0.0.1:PORT/...", file=sys.stderr)
        return 2
    host, port, path = "127.0.0.1", url.port, url.path or "/metrics"
    duration = args.duration
    warmup = args.warmup if args.warmup is not None else min(max(30.0, duration * 0.1), duration / 2)
    if read_status(args.pid) is None:
        print(f"soak: no process {args.pid}", file=sys.stderr)
        return 2

    stop = threading.Event()
    scrapers = [
        Scraper(i, host, port, path, use_gzip=(i % 2 == 0), keep_alive=(i % 4 < 2),
                pause=args.pause, stop=stop)
        for i in range(args.scrapers)
    ]
    log(f"{len(scrapers)} scrapers ({', '.join(sorted({s.mode() for s in scrapers}))}), "
        f"{args.pause:g} s between a scraper's scrapes, {duration:g} s, warm-up {warmup:g} s, "
        f"RSS sampled every {args.sample_every:g} s")

    t0 = time.monotonic()
    first = read_status(args.pid)
    first["load1"] = loadavg()
    samples = [(0.0, first)]
    monitor = StallMonitor(stop, args.pid)
    monitor.start()
    for s in scrapers:
        s.start()
    died = False
    next_sample = args.sample_every
    next_progress = 60.0
    while True:
        now = time.monotonic() - t0
        if now >= duration:
            break
        target = min(next_sample, duration)
        if target > now:
            time.sleep(target - now)
        now = time.monotonic() - t0
        st = read_status(args.pid)
        if st is None:
            died = True
            log(f"the exporter (pid {args.pid}) is gone after {now:.0f} s")
            break
        st["load1"] = loadavg()
        samples.append((now, st))
        next_sample += args.sample_every
        if now >= next_progress:
            done = sum(len(s.ok) for s in scrapers)
            failed = sum(len(s.failures) for s in scrapers)
            log(f"{now:5.0f} s: RSS {mib(st['rss_kib'])}, {done} scrapes, {failed} failed")
            next_progress += 60.0
    stop.set()
    for s in scrapers:
        s.join(timeout=15)
    elapsed = time.monotonic() - t0

    # Final look at the exporter's own counters.
    final_text = ""
    health = None
    if not died:
        try:
            status, body = fetch(host, port, path)
            if status == 200:
                final_text = body.decode("utf-8", "replace")
            health, _ = fetch(host, port, "/healthz")
        except OSError as e:
            log(f"final scrape failed: {e}")
    monitor.join(timeout=5)
    end_status = read_status(args.pid)
    if end_status is not None:
        end_status["load1"] = loadavg()
        samples.append((time.monotonic() - t0, end_status))
    if args.samples_csv:
        with open(args.samples_csv, "w", encoding="ascii") as f:
            f.write("seconds,rss_kib,hwm_kib,threads,fds,cpu_seconds,load1\n")
            for t, st in samples:
                f.write(f"{t:.1f},{st['rss_kib']},{st['hwm_kib']},{st['threads']},{st['fds']},"
                        f"{st['cpu_s']:.2f},{st['load1']:.2f}\n")

    # Scrape latencies.
    oks = [(s.mode(), *r) for s in scrapers for r in s.ok]
    failures = [(s.mode(), *f) for s in scrapers for f in s.failures]
    durations = sorted(r[2] for r in oks)
    slow = sorted((r for r in oks if r[2] * 1000 > args.slow_ms), key=lambda r: -r[2])
    total = len(oks) + len(failures)

    # RSS: start = median of the first three samples after the warm-up, end = median of the
    # last three (single samples are printed too); a sweep allocates a new snapshot while the
    # old one is still published, so one sample can catch a transient peak.
    post = [(t, st) for t, st in samples if t >= warmup]
    checks = {}
    print()
    log(f"ran {elapsed:.0f} s; exporter pid {args.pid} "
        + ("died" if died else "still running" + (f", /healthz {health}" if health else "")))
    if len(post) >= 2:
        head = [st["rss_kib"] for _, st in post[:3]]
        tail = [st["rss_kib"] for _, st in post[-3:]]
        start_rss, end_rss = statistics.median(head), statistics.median(tail)
        growth = (end_rss - start_rss) * 100.0 / start_rss
        max_rss = max(st["rss_kib"] for _, st in samples)
        log(f"RSS before warm-up {mib(samples[0][1]['rss_kib'])}; after warm-up ({post[0][0]:.0f} s) "
            f"{mib(post[0][1]['rss_kib'])}, at the end ({post[-1][0]:.0f} s) {mib(post[-1][1]['rss_kib'])}")
        log(f"RSS start {mib(start_rss)} (median of {len(head)} samples after warm-up), "
            f"end {mib(end_rss)} (median of the last {len(tail)}), growth {growth:+.1f}% "
            f"(limit {args.max_growth:g}%), max {mib(max_rss)} over {len(samples)} samples, "
            f"VmHWM {mib(samples[-1][1]['hwm_kib'])}")
        if len(post) >= 3:
            xs = [t for t, _ in post]
            ys = [st["rss_kib"] for _, st in post]
            mx, my = statistics.mean(xs), statistics.mean(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(
                sum((x - mx) ** 2 for x in xs), 1e-9)
            log(f"RSS trend after warm-up (least squares over {len(post)} samples): "
                f"{slope * 600 / 1024:+.2f} MiB per 10 min ({slope * 600 * 100 / start_rss:+.1f}% of start); "
                f"min {mib(min(ys))}, max {mib(max(ys))}")
            minutes = [st["rss_kib"] for t, st in samples if t >= 60 and int(t) % 60 < args.sample_every]
            if minutes:
                log("RSS each minute: " + " ".join(f"{k / 1024:.1f}" for k in minutes) + " MiB")
        checks["RSS flat after warm-up"] = growth < args.max_growth
        if growth >= args.max_growth:
            log(f"FAIL: RSS grew {growth:.1f}% after warm-up")
        f0, f1 = post[0][1], post[-1][1]
        cpu = (f1["cpu_s"] - samples[0][1]["cpu_s"]) / max(samples[-1][0], 1e-9) * 100
        log(f"open fds {f0['fds']} -> {f1['fds']}, threads {f0['threads']} -> {f1['threads']}, "
            f"exporter CPU {cpu:.0f}% of one core on average")
    else:
        log("FAIL: too few RSS samples after the warm-up (run longer than the warm-up)")
        checks["RSS flat after warm-up"] = False
    checks["exporter alive and healthy"] = not died and health == 200
    if not checks["exporter alive and healthy"]:
        log(f"FAIL: the exporter is {'gone' if died else f'unhealthy (/healthz {health})'}")

    log(f"scrapes: {total} total, {len(oks)} ok, {len(failures)} failed "
        f"({total / max(elapsed, 1e-9):.1f}/s)")
    if durations:
        q = statistics.quantiles(durations, n=100) if len(durations) >= 2 else durations * 99
        sizes = {}
        for mode, _, _, size, _ in oks:
            sizes.setdefault(mode.split("/")[0], []).append(size)
        log(f"latency: p50 {q[49] * 1000:.1f} ms, p90 {q[89] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, "
            f"max {durations[-1] * 1000:.1f} ms; body "
            + ", ".join(f"{m} {statistics.mean(v) / 1024:.0f} KiB" for m, v in sorted(sizes.items())))
    log(f"scrapes slower than {args.slow_ms:g} ms: {len(slow)}"
        + (f" ({len(slow) * 100.0 / max(len(oks), 1):.2f}%); slowest:" if slow else ""))
    loads = [st["load1"] for _, st in samples if st["load1"] == st["load1"]]
    if loads:
        log(f"machine load average (1 min) during the run: min {min(loads):.1f}, "
            f"mean {statistics.mean(loads):.1f}, max {max(loads):.1f} ({os.cpu_count()} CPUs)")
    big = [x for x in monitor.stalls if x[1] > 0.1]
    log(f"scraper-side stalls (the soak process itself woke > 100 ms late): {len(big)}"
        + (f", longest {max(x[1] for x in big) * 1000:.0f} ms" if big else ""))
    log(f"exporter threads waited {monitor.cum:.1f} s in total for a CPU (run-queue delay, "
        f"{monitor.cum * 100 / max(elapsed, 1e-9):.1f}% of the run)")
    for mode, started, secs, size, (conn_s, ttfb_s, body_s) in slow[:10]:
        stall = monitor.overlapping(started, started + secs)
        wait = monitor.exporter_wait(started, started + secs)
        near = min(samples, key=lambda x: abs(x[0] - (started - t0)))[1]["load1"]
        log(f"  {secs * 1000:7.1f} ms at {started - t0:6.1f} s ({mode}, {size} bytes): connect "
            f"{conn_s * 1000:.0f} ms, first byte {ttfb_s * 1000:.0f} ms, body {body_s * 1000:.0f} ms; "
            f"exporter threads waited {wait * 1000:.0f} ms for a CPU, soak process stalled "
            f"{stall * 1000:.0f} ms; load average {near:.1f}")
    for mode, at, reason in failures[:10]:
        log(f"  failed at {at - t0:6.1f} s ({mode}): {reason}")
    checks["every scrape succeeded"] = not failures and total > 0
    if failures or not total:
        log(f"FAIL: {len(failures)} of {total} scrapes failed")

    if final_text:
        polls = by_label(final_text, "linq_polls_total", "result")
        kinds = by_label(final_text, "linq_poll_failures_total", "kind")
        api_errors = by_label(final_text, "linq_api_errors_total", "kind")
        retries = int(series_sum(final_text, "linq_api_retries_total"))
        requests = int(series_sum(final_text, "linq_api_requests_total"))
        log(f"sweeps: {polls.get('success', 0)} succeeded, {polls.get('failure', 0)} failed"
            + (f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})" if kinds else ""))
        log(f"API: {requests} responses, {retries} retries, errors by kind "
            + (", ".join(f"{k} {v}" for k, v in api_errors.items()) or "none"))
        checks["sweeps succeed"] = polls.get("success", 0) > 0
        if not checks["sweeps succeed"]:
            log("FAIL: no sweep succeeded")
    else:
        log("FAIL: no final scrape of the exporter's counters")
        checks["sweeps succeed"] = False

    failed = [name for name, good in checks.items() if not good]
    passed = len(checks) - len(failed)
    print()
    for name, good in checks.items():
        print(f"{'ok' if good else 'FAIL'} - {name}")
    print(f"soak: {passed} passed, {len(failed)} failed ({len(oks)} of {total} scrapes ok)")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
