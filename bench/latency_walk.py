#!/usr/bin/env python3
"""Baseline client for bench/latency.sh: the requests a sweep makes, with nothing else.

GET /v3/phone_numbers once, then one cursor walk of GET /v3/chats per --from number (or one
unfiltered walk), all in parallel, one keep-alive connection per walk. The next cursor is read
from the end of each body without decoding the page. Prints "ms=<wall> pages=<total>".
"""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--from", dest="numbers", default="", help="comma-separated numbers")
    args = ap.parse_args()
    url = urllib.parse.urlsplit(args.base_url)
    headers = {"Authorization": f"Bearer {args.key}"}
    numbers = [n for n in args.numbers.split(",") if n] or [None]
    pages = [0] * len(numbers)
    errors = []

    def get(conn, path):
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {resp.status}")
        return body

    def walk(i, number):
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            cursor = None
            while True:
                q = {"limit": args.limit}
                if number:
                    q["from"] = number
                if cursor:
                    q["cursor"] = cursor
                body = get(conn, "/v3/chats?" + urllib.parse.urlencode(q))
                pages[i] += 1
                tail = body[body.rfind(b'"next_cursor"'):]
                cursor = json.loads(b"{" + tail)["next_cursor"]
                if not cursor:
                    return
        except Exception as e:  # noqa: BLE001 - reported, then the script fails
            errors.append(f"walk {number or 'unfiltered'}: {e}")

    t0 = time.monotonic()
    get(http.client.HTTPConnection(url.hostname, url.port, timeout=30), "/v3/phone_numbers")
    threads = [threading.Thread(target=walk, args=(i, n)) for i, n in enumerate(numbers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = (time.monotonic() - t0) * 1000
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    print(f"ms={ms:.0f} pages={sum(pages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
