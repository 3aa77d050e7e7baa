#!/usr/bin/env python3
"""Runs the release binary the way the container image and the Kubernetes probes do.

    python3 scripts/deploy/check_binary.py BINARY [--counts FILE]

The image is built on Debian 12 (rust:*-bookworm) and runs on distroless cc-debian12, the same
glibc as this Debian 12 machine, so the binary CI built here stands in for the one in the image:
  - it links only against libraries that distroless/cc ships (glibc, libgcc_s; no OpenSSL);
  - `--version` names Cargo.toml's version;
  - it carries the jemalloc options `.cargo/config.toml` sets (JEMALLOC_SYS_WITH_MALLOC_CONF),
    compiled in as a string, so a build that missed the file is caught;
  - `--demo --once` exits 0 and prints `linq_up 1`;
  - as a server (`--demo`, on a free 127.0.0.1 port): /healthz answers 200 (the liveness and
    startup probes), /readyz turns 200 after the first sweep (the readiness probe), the telemetry
    path serves linq_up 1, `healthcheck --url` (the Docker HEALTHCHECK) exits 0; SIGTERM ends it with
    status 0 within 10 s, and `healthcheck` then exits 1.
Prints one line per check and `binary: N passed, M failed`; exit status 1 on any failure.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request

from checks import Checker  # scripts/deploy/checks.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What gcr.io/distroless/cc-debian12 provides (base: glibc, cc: + libgcc_s, libstdc++, libgomp).
DISTROLESS_CC_LIBS = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0",
                      "libdl.so.2", "librt.so.1", "libstdc++.so.6", "libgomp.so.1",
                      "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
CK = Checker()
check = CK.check


def http_get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return None, ""


def wait_for(url, status, deadline):
    last = None
    while time.monotonic() < deadline:
        last, body = http_get(url)
        if last == status:
            return True, body
        time.sleep(0.2)
    return False, f"last status {last}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(text, n=600):
    text = (text or "").strip()
    return text[-n:].replace("\n", " | ")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--counts")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        version = tomllib.load(f)["package"]["version"]

    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True)
    libs = {line.split()[0].split("/")[-1] for line in ldd.stdout.splitlines() if line.strip()}
    check("binary: links only against libraries distroless/cc-debian12 ships (no OpenSSL)",
          ldd.returncode == 0 and libs <= DISTROLESS_CC_LIBS,
          f"extra: {sorted(libs - DISTROLESS_CC_LIBS)} {tail(ldd.stderr)}")

    with open(os.path.join(ROOT, ".cargo", "config.toml"), "rb") as f:
        malloc_conf = tomllib.load(f)["env"]["JEMALLOC_SYS_WITH_MALLOC_CONF"]
    with open(binary, "rb") as f:
        carried = malloc_conf.encode() in f.read()
    check(f"binary: built with the jemalloc options of .cargo/config.toml ({malloc_conf})", carried,
          "not in the binary: was it built outside this checkout?")

    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    check(f"binary: --version exits 0 and names {version}",
          out.returncode == 0 and re.search(rf"\b{re.escape(version)}\b", out.stdout) is not None,
          f"exit {out.returncode}: {tail(out.stdout + out.stderr)}")

    try:
        out = subprocess.run([binary, "--demo", "--once"], capture_output=True, text=True, timeout=180,
                             stdin=subprocess.DEVNULL)
        check("binary: --demo --once exits 0 and prints linq_up 1",
              out.returncode == 0 and re.search(r"^linq_up 1$", out.stdout, re.M) is not None,
              f"exit {out.returncode}: {tail(out.stderr)}")
    except subprocess.TimeoutExpired:
        check("binary: --demo --once exits 0 and prints linq_up 1", False, "timed out after 180 s")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, LINQ_EXPORTER_LOG_FORMAT="json")
    env.pop("LINQ_API_V3_API_KEY", None)
    proc = subprocess.Popen([binary, "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        ok, why = wait_for(f"{base}/healthz", 200, time.monotonic() + 20)
        check("server: /healthz answers 200 (startup and liveness probes)", ok, why)
        ok, why = wait_for(f"{base}/readyz", 200, time.monotonic() + 120)
        check("server: /readyz turns 200 after the first sweep (readiness probe)", ok, why)
        status, body = http_get(f"{base}/metrics", timeout=10)
        check("server: /metrics serves linq_up 1 (the prometheus.io/path and monitors' path)",
              status == 200 and re.search(r"^linq_up 1$", body, re.M) is not None, f"status {status}")
        hc = subprocess.run([binary, "healthcheck", "--url", f"{base}/healthz"],
                            capture_output=True, text=True, timeout=30)
        check("healthcheck: exits 0 against a healthy exporter (Docker HEALTHCHECK)",
              hc.returncode == 0, f"exit {hc.returncode}: {tail(hc.stdout + hc.stderr)}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
            check("server: SIGTERM ends it with exit status 0 within 10 s", code == 0,
                  f"exit {code}: {tail(proc.stderr.read() if proc.stderr else '')}")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            check("server: SIGTERM ends it with exit status 0 within 10 s", False, "still running")
    hc = subprocess.run([binary, "healthcheck", "--url", f"{base}/healthz", "--timeout", "1s"],
                        capture_output=True, text=True, timeout=30)
    check("healthcheck: exits 1 when nothing answers", hc.returncode == 1,
          f"exit {hc.returncode}: {tail(hc.stdout + hc.stderr)}")

    return CK.finish("binary", args.counts)


if __name__ == "__main__":
    sys.exit(main())
