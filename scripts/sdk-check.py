#!/usr/bin/env python3
"""The simulator and the demo's webhooks, checked with the official Linq SDK (`linq-python`).

1. Chats: `linq-exporter simulate` serves 3,000 chats; the SDK lists every one through its own
   auto-pagination with strict response validation (`_strict_response_validation=True`), and
   `linq-exporter --once` against the same simulator must report exactly the same chats: the
   same ids, number, service, group and archived flags and health status. The SDK also fetches
   one chat by id, filters with `to=`, lists the phone numbers, and creates, lists and deletes a
   webhook subscription, each strictly validated.
2. Webhooks: the simulator sends its signed demo webhooks to a receiver here; each delivery is
   verified and decoded with the SDK's `client.webhooks.unwrap`, and validated against the
   SDK's model for its event type (`model_validate`: every required field, every type). Only
   the demo's deliberately forged and stale deliveries may fail verification. Message
   timestamps must follow the 2026-02-03 schemas.

Usage: python3 scripts/sdk-check.py   (LINQ_EXPORTER_BIN: the binary; default target/debug,
built when missing). Needs linq-python and standardwebhooks (scripts/install-deps.sh).
"""

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHATS = 3000
WEBHOOKS = 1500


def fail(msg):
    print(f"sdk-check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def binary():
    path = os.environ.get("LINQ_EXPORTER_BIN") or os.path.join(ROOT, "target", "debug", "linq-exporter")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--locked", "--quiet"], cwd=ROOT, check=True)
    return path


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("LINQ_")}


class Simulator:
    def __init__(self, exe, extra=()):
        self.proc = subprocess.Popen(
            [exe, "simulate", "--listen", "127.0.0.1:0", "--chats", str(CHATS), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            env=clean_env(), text=True)
        self.url = self.proc.stdout.readline().strip().removeprefix("url=")
        self.key = self.proc.stdout.readline().strip().removeprefix("key=")
        if not self.url.startswith("http://") or not self.key:
            fail(f"simulate printed url={self.url!r} key={self.key!r}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def exporter_once(exe, url, key):
    env = clean_env()
    env["LINQ_API_V3_API_KEY"] = key
    out = subprocess.run(
        [exe, "--once", "--linq.base-url", url, "--linq.phone-numbers=false", "--log.level", "error"],
        env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        fail(f"--once exited {out.returncode}: {out.stderr}")
    return out.stdout


LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def series(text, name):
    """{chat_id: labels} for every sample of `name`."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = dict(LABELS.findall(line[len(name):line.rindex("}") + 1]))
            out[labels["chat_id"]] = labels
    return out


def check_chats(exe, linq):
    from linq import LinqAPIV3

    sim = Simulator(exe)
    try:
        client = LinqAPIV3(api_key=sim.key, base_url=sim.url, _strict_response_validation=True)
        for attempt in range(3):
            started = time.time()
            sdk = {}
            for chat in client.chats.list_chats(limit=100):  # the SDK follows next_cursor itself
                if chat.id in sdk:
                    fail(f"the SDK saw chat {chat.id} twice")
                sdk[chat.id] = chat
            exposition = exporter_once(exe, sim.url, sim.key)
            if len(sdk) != CHATS:
                fail(f"the SDK listed {len(sdk)} chats, not {CHATS}")
            info = series(exposition, "linq_chat_info")
            status = series(exposition, "linq_chat_health_status")
            mismatches = []
            if set(info) != set(sdk):
                fail(f"--once has {len(info)} chats, the SDK {len(sdk)}; "
                     f"{len(set(sdk) - set(info))} missing, {len(set(info) - set(sdk))} extra")
            for cid, chat in sdk.items():
                me = [h.handle for h in chat.handles if h.is_me]
                want = {
                    "phone_number": me[0] if me else "",
                    "service": chat.service or "unknown",
                    "is_group": str(chat.is_group).lower(),
                    "is_archived": str(chat.is_archived).lower(),
                }
                got = {k: info[cid].get(k) for k in want}
                if got != want:
                    fail(f"chat {cid}: --once says {got}, the SDK {want}")
                if status.get(cid, {}).get("status") != chat.health_status.status:
                    mismatches.append(cid)
            if not mismatches:
                break
            # Health drifts every 15 s in the simulator: a walk across a drift boundary differs.
            print(f"sdk-check: {len(mismatches)} health statuses moved between the walks "
                  f"({time.time() - started:.1f}s); again")
        else:
            fail(f"health status differs for {len(mismatches)} chats, e.g. {mismatches[:3]}")
        print(f"sdk-check: chats: the SDK and --once agree on all {CHATS} chats "
              "(id, number, service, group, archived, health status)")

        first = next(iter(sdk.values()))
        one = client.chats.retrieve(first.id)
        if one.id != first.id:
            fail(f"GET /v3/chats/{{id}} returned {one.id}")
        other = [h.handle for h in first.handles if not h.is_me][0]
        with_to = list(client.chats.list_chats(to=other, limit=100))
        if not with_to or any(all(h.handle != other for h in c.handles) for c in with_to):
            fail(f"to={other} returned chats without that participant")
        try:
            client.chats.retrieve("no-such-chat")
            fail("GET /v3/chats/no-such-chat did not fail")
        except linq.NotFoundError:
            pass
        numbers = client.phone_numbers.list().phone_numbers
        if len(numbers) != 3 or any(n.line_type not in ("iMessage", "RCS") for n in numbers):
            fail(f"phone numbers: {numbers}")
        created = client.webhook_subscriptions.create(
            target_url="https://hooks.example.com/webhook",
            subscribed_events=["message.failed", "message.read"])
        listed = client.webhook_subscriptions.list().subscriptions
        if [s.id for s in listed] != [created.id]:
            fail(f"listed {listed}")
        client.webhook_subscriptions.delete(created.id)
        if client.webhook_subscriptions.list().subscriptions:
            fail("the subscription was not deleted")
        print("sdk-check: GET /v3/chats/{id}, to=, phone numbers and webhook subscriptions "
              "validate strictly")
    finally:
        sim.stop()


def check_webhooks(exe, linq):
    from linq import LinqAPIV3, types
    from standardwebhooks.webhooks import WebhookVerificationError

    received = []
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()
            if len(received) >= WEBHOOKS:
                done.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    sim = Simulator(exe, ["--webhook-url", hook, "--webhook-interval", "5ms"])
    try:
        if not done.wait(120):
            fail(f"only {len(received)} webhook deliveries in 120 s")
    finally:
        sim.stop()
        server.shutdown()

    secret = "whsec_ZGVtby13ZWJob29rLXNlY3JldA=="  # DEMO_WEBHOOK_SECRET
    client = LinqAPIV3(api_key="unused", base_url="http://127.0.0.1:1", webhook_secret=secret)
    models = {
        "message.sent": types.MessageSentWebhookEvent,
        "message.received": types.MessageReceivedWebhookEvent,
        "message.delivered": types.MessageDeliveredWebhookEvent,
        "message.read": types.MessageReadWebhookEvent,
        "message.failed": types.MessageFailedWebhookEvent,
        "participant.added": types.ParticipantAddedWebhookEvent,
        "participant.removed": types.ParticipantRemovedWebhookEvent,
        "chat.created": types.ChatCreatedWebhookEvent,
        "phone_number.status_updated": types.PhoneNumberStatusUpdatedWebhookEvent,
    }
    timestamps = {
        "message.sent": (True, False, False),
        "message.received": (True, False, False),
        "message.delivered": (True, True, False),
        "message.read": (True, True, True),
    }
    counts, rejected = {}, 0
    for headers, body in received[:WEBHOOKS]:
        try:
            event = client.webhooks.unwrap(body, headers=headers)
        except WebhookVerificationError:
            rejected += 1  # the demo's forged and stale deliveries
            continue
        kind = event.event_type
        model = models.get(kind)
        if model is None:
            fail(f"unexpected event type {kind}")
        try:
            strict = model.model_validate(json.loads(body))
        except Exception as e:  # pydantic.ValidationError, with every missing field listed
            fail(f"{kind} does not validate against {model.__name__}: {e}")
        if kind in timestamps:
            d = strict.data
            have = (d.sent_at is not None, d.delivered_at is not None, d.read_at is not None)
            if have != timestamps[kind]:
                fail(f"{kind}: sent/delivered/read set = {have}, the schema says {timestamps[kind]}")
            stamps = [t for t in (d.sent_at, d.delivered_at, d.read_at) if t is not None]
            if stamps != sorted(stamps) or stamps[-1] > strict.created_at:
                fail(f"{kind}: timestamps out of order: {stamps} created {strict.created_at}")
        if not re.fullmatch(r"[0-9a-f]{32}", strict.trace_id):
            fail(f"trace_id {strict.trace_id!r}")
        counts[kind] = counts.get(kind, 0) + 1
    missing = set(models) - set(counts)
    if missing:
        fail(f"no {sorted(missing)} among {WEBHOOKS} deliveries")
    # One forged and one stale delivery per 500 events; replays verify (they are counted once
    # by the exporter's deduplication, not here).
    if not 1 <= rejected <= 2 * (WEBHOOKS // 450 + 1):
        fail(f"{rejected} deliveries failed verification")
    print(f"sdk-check: webhooks: {WEBHOOKS - rejected} of {WEBHOOKS} deliveries verify with "
          f"webhooks.unwrap and validate strictly ({rejected} forged or stale, as intended): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def main():
    try:
        import linq
        import standardwebhooks  # noqa: F401
    except ImportError as e:
        fail(f"{e}: run scripts/install-deps.sh (pip install linq-python standardwebhooks)")
    print(f"sdk-check: linq-python {linq.__version__}")
    started = time.time()
    exe = binary()
    check_chats(exe, linq)
    check_webhooks(exe, linq)
    print(f"sdk-check: ok ({time.time() - started:.1f}s)")


if __name__ == "__main__":
    main()
