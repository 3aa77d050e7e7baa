#!/usr/bin/env python3
"""The exposition as Prometheus' own tools and a strict reference parser see it.

Runs the release binary with --demo and the webhook receiver on, posts seven signed
message.delivered events with known timestamps (service "E2E", a number that is not the
account's, so the demo's own events never land in those series), then checks:

1. promtool check metrics prints nothing for the live text exposition (webhooks on) and for
   `--demo --once` (webhooks off), plain and gzip;
2. the OpenMetrics answer (Prometheus 2 and 3 Accept headers) passes the strict parser of the
   Python client (prometheus_client.openmetrics.parser), ends in # EOF and carries the events'
   trace_id exemplars;
3. a real Prometheus with --enable-feature=native-histograms scrapes protobuf and
   histogram_count()/histogram_sum() of the E2E delivery histogram are exactly 7 and 4262.5,
   with no classic _bucket series stored;
4. a real Prometheus with --enable-feature=exemplar-storage finds the seven trace ids through
   /api/v1/query_exemplars.

Every wait is bounded; the processes are stopped at the end. Prints `N passed, N failed`.
"""

import base64
import gzip
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BIN = os.environ.get("LINQ_EXPORTER_BIN", os.path.join(ROOT, "target/release/linq-exporter"))
SECRET = "whsec_" + base64.b64encode(b"exposition-check-secret-32bytes!").decode()
PROM2_OM = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROM3 = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
         "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;"
         "escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
# Seconds from sent_at to delivered_at: one per classic bucket, so every exemplar survives.
DELAYS = [0.5, 1.5, 3.0, 12.0, 45.0, 200.0, 4000.5]

passed = 0
failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""))
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, accept=None, gz=False, timeout=10):
    req = urllib.request.Request(url)
    if accept:
        req.add_header("Accept", accept)
    if gz:
        req.add_header("Accept-Encoding", "gzip")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
        if r.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return r.headers.get("Content-Type", ""), body


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        time.sleep(0.25)
    check(False, what, f"not within {timeout}s; last: {str(last)[:300]}")
    return None


def sign(msg_id, ts, body):
    key = base64.b64decode(SECRET[len("whsec_"):])
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": "v1," + sig.decode()}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + ".%03dZ" % round((t % 1) * 1000)


def post_events(webhook_port):
    now = time.time()
    for i, delay in enumerate(DELAYS):
        sent = 1_770_000_000.0 + i * 10_000
        body = json.dumps({
            "api_version": "v3", "webhook_version": "2026-02-03", "event_type": "message.delivered",
            "event_id": f"e2e-{i}", "created_at": iso(now - 1), "trace_id": f"e2e{i:04d}",
            "partner_id": "p",
            "data": {"chat": {"id": f"e2e-chat-{i}", "is_group": False,
                              "owner_handle": {"handle": "+19995550100", "is_me": True, "service": "E2E"}},
                     "id": f"m{i}", "direction": "outbound", "service": "E2E", "parts": [],
                     "sent_at": iso(sent), "delivered_at": iso(sent + delay), "read_at": None},
        }).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{webhook_port}/webhook", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        for k, v in sign(f"msg_e2e_{i}", int(now), body).items():
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status != 200:
                return False
    return True


def promtool_lint(text, what):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode().strip()
    check(r.returncode == 0 and out == "", f"promtool check metrics: {what} has no findings", out[:2000])


def om_parse(text, what):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    try:
        families = list(text_string_to_metric_families(text.decode()))
    except Exception as e:  # noqa: BLE001
        check(False, f"strict OpenMetrics parser accepts {what}", repr(e))
        return []
    check(True, f"strict OpenMetrics parser accepts {what} ({len(families)} families)")
    return families


def prometheus(args, port, exporter_port, tmp, name):
    cfg = os.path.join(tmp, f"{name}.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                f"  - job_name: linq-exporter\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{exporter_port}']\n")
    data = os.path.join(tmp, f"{name}-data")
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    return subprocess.Popen(["prometheus", *args, "--config.file", cfg, "--storage.tsdb.path", data,
                             "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"],
                            stdout=log, stderr=log)


def query(port, q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    _, body = get(url)
    return json.loads(body)["data"]["result"]


def main():
    if not os.access(BIN, os.X_OK):
        check(False, f"exporter binary {BIN} exists (cargo build --release)")
        return
    tmp = tempfile.mkdtemp(prefix="exposition-check.")
    procs = []
    try:
        # --once without the receiver (webhooks off).
        once = subprocess.run([BIN, "--demo", "--once", "--demo.error-rate", "0", "--demo.rate-limit-rate", "0",
                               "--demo.slow-rate", "0", "--log.level", "warn"], capture_output=True, timeout=120)
        check(once.returncode == 0, "--demo --once exits 0", once.stderr.decode()[-500:])
        promtool_lint(once.stdout, "--demo --once (webhooks off)")

        port, wport = free_port(), free_port()
        log = open(os.path.join(tmp, "exporter.log"), "w")
        exporter = subprocess.Popen([BIN, "--demo", "--web.listen-address", f"127.0.0.1:{port}",
                                     "--webhook.listen-address", f"127.0.0.1:{wport}",
                                     "--webhook.signing-secret", SECRET, "--linq.poll-interval", "2s",
                                     "--log.level", "warn"], stdout=log, stderr=log)
        procs.append(exporter)
        base = f"http://127.0.0.1:{port}"
        if not wait(lambda: get(base + "/readyz")[1] == b"ready\n", 60, "exporter ready"):
            return
        check(post_events(wport), "7 signed message.delivered events accepted")

        # 1. promtool on every text answer.
        for gz in (False, True):
            ct, text = get(base + "/metrics", gz=gz)
            check(ct.startswith("text/plain; version=0.0.4"), f"default answer is text 0.0.4 ({ct})")
            promtool_lint(text, "live demo with webhooks" + (" (gzip)" if gz else ""))
        # 2. OpenMetrics through the strict parser.
        for name, accept in (("Prometheus 2", PROM2_OM), ("Prometheus 3", PROM3)):
            for gz in (False, True):
                ct, om = get(base + "/metrics", accept=accept, gz=gz)
                what = f"OpenMetrics for {name}'s Accept" + (" (gzip)" if gz else "")
                check(ct == "application/openmetrics-text; version=1.0.0; charset=utf-8", f"{what}: content type", ct)
                check(om.endswith(b"# EOF\n"), f"{what}: ends in # EOF")
                families = om_parse(om, what)
                exemplars = {s.exemplar.labels.get("trace_id") for f in families
                             if f.name == "linq_message_delivery_seconds" for s in f.samples
                             if s.labels.get("service") == "E2E" and s.exemplar}
                want = {f"e2e{i:04d}" for i in range(len(DELAYS))}
                check(want <= exemplars, f"{what}: the 7 trace_id exemplars", sorted(exemplars))
                counters = [f.name for f in families if f.type == "counter"]
                check("linq_polls" in counters and "process_cpu_seconds" in counters,
                      f"{what}: counter families named without _total")

        # 3 and 4: real Prometheus servers.
        nport, eport = free_port(), free_port()
        procs.append(prometheus(["--enable-feature=native-histograms"], nport, port, tmp, "native"))
        procs.append(prometheus(["--enable-feature=exemplar-storage"], eport, port, tmp, "exemplars"))
        sel = 'linq_message_delivery_seconds{service="E2E"}'
        got = wait(lambda: query(nport, f"histogram_count({sel})"), 90,
                   "native-histograms Prometheus: histogram_count of the E2E delivery histogram")
        if got:
            count = float(got[0]["value"][1])
            check(count == len(DELAYS), f"native: histogram_count() = {count}, want {len(DELAYS)}")
            total = float(query(nport, f"histogram_sum({sel})")[0]["value"][1])
            check(abs(total - sum(DELAYS)) < 1e-9, f"native: histogram_sum() = {total}, want {sum(DELAYS)}")
            buckets = query(nport, 'linq_message_delivery_seconds_bucket{service="E2E"}')
            check(buckets == [], "native: stored as a native histogram (no classic _bucket series)")
            ct, _ = get(base + "/metrics", accept="application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
            check(ct.startswith("application/vnd.google.protobuf"), f"protobuf served once asked for ({ct})")

        def exemplars():
            end = time.time() + 5
            url = (f"http://127.0.0.1:{eport}/api/v1/query_exemplars?" + urllib.parse.urlencode(
                {"query": 'linq_message_delivery_seconds_bucket{service="E2E"}', "start": end - 600, "end": end}))
            data = json.loads(get(url)[1])["data"]
            ids = {e["labels"].get("trace_id") for series in data for e in series["exemplars"]}
            return ids if len(ids) >= len(DELAYS) else None
        ids = wait(exemplars, 90, "exemplar-storage Prometheus: query_exemplars finds the trace ids")
        if ids:
            want = {f"e2e{i:04d}" for i in range(len(DELAYS))}
            check(want <= ids, f"exemplars: every trace id found ({len(ids)} exemplars)", sorted(ids))
        got = wait(lambda: query(eport, 'linq_message_delivery_seconds_count{service="E2E"}'), 30,
                   "exemplar Prometheus (OpenMetrics): classic _count")
        if got:
            check(float(got[0]["value"][1]) == len(DELAYS), "classic: _count = 7 through OpenMetrics")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if failed:
            for name in ("exporter.log", "native.log", "exemplars.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    print(f"--- {name} (last lines)")
                    print("".join(open(path).readlines()[-15:]))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
