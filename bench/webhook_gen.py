#!/usr/bin/env python3
"""Pre-signed webhook deliveries for bench/webhook.sh.

Writes COUNT raw HTTP/1.1 POST requests to OUT, each preceded by a line with its length in
bytes, for bench/webhook_load.lua to replay. Every request is a distinct message event
(~700-byte 2026-02-03 envelope: message.sent, .delivered, .read, .received, about 1 % .failed)
with its own event_id and webhook-id, signed the way Linq signs it: both header sets,
Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature "v1,<base64 HMAC-SHA256
keyed with base64decode(secret after whsec_) over {id}.{ts}.{body}>") and legacy
(x-webhook-timestamp / x-webhook-signature, hex HMAC-SHA256 keyed with the secret string over
{ts}.{body}).

The chats come from the simulator (--base-url, --key): the first pages of GET /v3/chats, so the
events name chats and account numbers the exporter knows from its sweep. Without --base-url,
made-up chats are used. Prints "requests=N bytes=B mean_body=M chats=C" on stdout.
"""

import argparse
import base64
import hashlib
import hmac
import json
import multiprocessing
import sys
import time
import urllib.request

EVENTS = ["message.sent"] * 40 + ["message.delivered"] * 30 + ["message.read"] * 18 + \
    ["message.received"] * 11 + ["message.failed"]
WORDS = ("hello there thanks for the update see you at the meeting tomorrow please confirm "
         "your appointment for thursday at ten your order has shipped and will arrive soon "
         "reply stop to opt out call us back when you can").split()


def fetch_chats(base_url, key, pages):
    chats, cursor = [], None
    for _ in range(pages):
        url = f"{base_url}/v3/chats?limit=100" + (f"&cursor={cursor}" if cursor else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            page = json.load(r)
        for c in page.get("chats") or []:
            owner = next((h for h in c.get("handles") or [] if h.get("is_me")), None)
            if owner is None or not c.get("id"):
                continue
            chats.append((c["id"], owner.get("handle", ""), c.get("service") or "SMS",
                          bool(c.get("is_group"))))
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return chats


def made_up_chats(n):
    services = ["iMessage", "iMessage", "SMS", "RCS"]
    return [(f"chat_{i:08x}", f"+1415555{100 + i % 4:04d}", services[i % 4], i % 9 == 0)
            for i in range(n)]


CHUNK = 20000
CTX = {}


def make(span):
    """Requests lo..hi-1: the bytes to write, and the sum of their body lengths."""
    lo, hi = span
    c = CTX
    chats, prefix, ts = c["chats"], c["prefix"], c["ts"]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))
    out, bodies = [], 0
    for n in range(lo, hi):
        chat_id, owner, service, is_group = chats[(n * 7919) % len(chats)]
        event_type = EVENTS[n % len(EVENTS)]
        words = 4 + (n * 31) % 18
        text = " ".join(WORDS[(n + k * 5) % len(WORDS)] for k in range(words)).capitalize()
        outbound = event_type != "message.received"
        data = {
            "chat": {"id": chat_id, "is_group": is_group,
                     "owner_handle": {"handle": owner, "is_me": True, "service": service}},
            "id": f"msg_{prefix}{n:010d}",
            "direction": "outbound" if outbound else "inbound",
            "service": service,
            "from_handle": {"handle": owner if outbound else f"+1628555{n % 10000:04d}",
                            "is_me": outbound, "service": service},
            "parts": [{"type": "text", "value": text}],
            "sent_at": created,
            "delivered_at": created if event_type in ("message.delivered", "message.read") else None,
            "read_at": created if event_type == "message.read" else None,
            "effect": None,
            "reply_to": None,
            "idempotency_key": f"idem-{prefix}-{n:010d}",
        }
        if event_type == "message.failed":
            data["error_code"] = "3007"
            data["error_message"] = "The recipient could not be reached on this service"
        event_id = f"evt_{prefix}{n:012d}"
        body = json.dumps({
            "api_version": "v3", "webhook_version": "2026-02-03", "event_type": event_type,
            "event_id": event_id, "created_at": created,
            "trace_id": hashlib.md5(event_id.encode()).hexdigest(),
            "partner_id": "prt_bench0000000000", "data": data,
        }, separators=(",", ":")).encode()
        wid = f"msg_{event_id}"
        std = base64.b64encode(hmac.new(c["std_key"], f"{wid}.{ts}.".encode() + body,
                                        hashlib.sha256).digest()).decode()
        legacy = hmac.new(c["legacy_key"], f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        head = (f"POST {c['path']} HTTP/1.1\r\nHost: {c['host']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"User-Agent: Svix-Webhooks/1.0\r\n"
                f"webhook-id: {wid}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: v1,{std}\r\n"
                f"x-webhook-timestamp: {ts}\r\nx-webhook-signature: {legacy}\r\n\r\n").encode()
        req = head + body
        out.append(b"%d\n" % len(req))
        out.append(req)
        bodies += len(body)
    return b"".join(out), bodies


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--secret", required=True, help="whsec_<base64>")
    p.add_argument("--path", default="/webhook")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--prefix", default="b", help="makes ids unique across files of one run")
    p.add_argument("--base-url")
    p.add_argument("--key")
    p.add_argument("--pages", type=int, default=10)
    p.add_argument("--timestamp", type=int, default=None, help="default: now")
    p.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    a = p.parse_args()

    chats = fetch_chats(a.base_url, a.key, a.pages) if a.base_url else made_up_chats(1000)
    if not chats:
        sys.exit("webhook_gen.py: no chats with an is_me handle from the simulator")
    ts = a.timestamp if a.timestamp is not None else int(time.time())
    CTX.update(chats=chats, std_key=base64.b64decode(a.secret.removeprefix("whsec_")),
               legacy_key=a.secret.encode(), prefix=a.prefix, path=a.path, host=a.host,
               ts=str(ts))
    chunks = [(lo, min(lo + CHUNK, a.count)) for lo in range(0, a.count, CHUNK)]
    total = body_total = 0
    with open(a.out, "wb", buffering=1 << 20) as out:
        if a.jobs > 1 and len(chunks) > 1:
            with multiprocessing.get_context("fork").Pool(a.jobs) as pool:
                for data, bodies in pool.imap(make, chunks):
                    out.write(data)
                    total += len(data)
                    body_total += bodies
        else:
            for c in chunks:
                data, bodies = make(c)
                out.write(data)
                total += len(data)
                body_total += bodies
    print(f"requests={a.count} bytes={total} mean_body={body_total // max(a.count, 1)} chats={len(chats)}")


if __name__ == "__main__":
    main()
