#!/usr/bin/env python3
"""Signature test vectors for the webhook receiver, computed independently of the Rust code:
Standard Webhooks signatures by the specification's Python package (`standardwebhooks`), legacy
ones by Python's `hmac`. Writes tests/fixtures/webhook_vectors.json, which the Rust unit tests in
src/webhook/verify.rs check case by case.

  python3 scripts/webhook-vectors.py           # (re)write the fixture
  python3 scripts/webhook-vectors.py --check   # CI: fail if the fixture differs from a fresh run
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import sys

from standardwebhooks.webhooks import Webhook

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "webhook_vectors.json")

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE="
OTHER = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
NOW = 1_780_000_000
MAX_AGE = 300
BODY = json.dumps(
    {"api_version": "v3", "webhook_version": "2026-02-03", "event_type": "message.sent",
     "event_id": "e20feb41-7f67-43f0-89c8-a985cff3b568", "created_at": "2026-02-05T19:52:18Z",
     "trace_id": "t", "partner_id": "p",
     "data": {"chat": {"id": "c1", "owner_handle": {"handle": "+12025551234"}}, "service": "iMessage",
              "parts": [{"type": "text", "value": "Hé ✓ \"quoted\""}]}},
    separators=(",", ":"), ensure_ascii=False)


def standard(secret, msg_id, ts, body):
    sig = Webhook(secret).sign(msg_id, datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def legacy(secret, ts, body):
    mac = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return {"x-webhook-timestamp": str(ts), "x-webhook-signature": mac}


def cases():
    both = {**standard(SECRET, "msg_1", NOW, BODY), **legacy(SECRET, NOW, BODY)}
    yield "both header sets", both, BODY, "ok", "msg_1"
    yield "standard only", standard(SECRET, "msg_2", NOW, BODY), BODY, "ok", "msg_2"
    yield "legacy only", legacy(SECRET, NOW, BODY), BODY, "ok", None
    other_first = standard(OTHER, "msg_3", NOW, BODY)["webhook-signature"]
    multi = standard(SECRET, "msg_3", NOW, BODY)
    multi["webhook-signature"] = f"{other_first} v2,abc {multi['webhook-signature']}"
    yield "several signatures, one matching", multi, BODY, "ok", "msg_3"
    yield "tampered body", both, BODY.replace("Hé", "He"), "signature", None
    yield "wrong secret", {**standard(OTHER, "msg_1", NOW, BODY), **legacy(OTHER, NOW, BODY)}, BODY, "signature", None
    swapped = standard(SECRET, "msg_1", NOW, BODY)
    swapped["webhook-id"] = "msg_other"
    yield "id not the one signed", swapped, BODY, "signature", None
    yield "no headers", {}, BODY, "signature", None
    yield "stale by 301 s", {**standard(SECRET, "msg_4", NOW - 301, BODY), **legacy(SECRET, NOW - 301, BODY)}, BODY, "timestamp", None
    yield "future by 301 s", {**standard(SECRET, "msg_5", NOW + 301, BODY), **legacy(SECRET, NOW + 301, BODY)}, BODY, "timestamp", None
    yield "stale by exactly 300 s", standard(SECRET, "msg_6", NOW - 300, BODY), BODY, "ok", "msg_6"
    yield "legacy stale", legacy(SECRET, NOW - 3600, BODY), BODY, "timestamp", None
    upper = legacy(SECRET, NOW, BODY)
    upper["x-webhook-signature"] = upper["x-webhook-signature"].upper()
    yield "legacy hex in upper case", upper, BODY, "ok", None
    # The Standard key is the decoded secret, the legacy key the secret as written: a legacy
    # signature keyed with the decoded bytes must not verify.
    raw = base64.b64decode(SECRET[len("whsec_"):])
    wrong_key = {"x-webhook-timestamp": str(NOW),
                 "x-webhook-signature": hmac.new(raw, f"{NOW}.{BODY}".encode(), hashlib.sha256).hexdigest()}
    yield "legacy keyed with the decoded secret", wrong_key, BODY, "signature", None


def build():
    out = {"secret": SECRET, "now": NOW, "max_age_seconds": MAX_AGE, "cases": []}
    for name, headers, body, expect, webhook_id in cases():
        out["cases"].append({"name": name, "headers": headers, "body": body, "expect": expect,
                             "webhook_id": webhook_id})
    return json.dumps(out, indent=1, ensure_ascii=False) + "\n"


def main():
    text = build()
    if "--check" in sys.argv[1:]:
        with open(FIXTURE, encoding="utf-8") as f:
            if f.read() != text:
                print(f"webhook vectors: {FIXTURE} differs from a fresh run of this script")
                return 1
        print(f"webhook vectors: {FIXTURE} matches the standardwebhooks package and hmac (1 passed, 0 failed)")
        return 0
    with open(FIXTURE, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
