#!/usr/bin/env python3
"""Generates a realistic static Linq `GET /v3/chats` dataset for bench/run.sh.

Writes, under OUT:
  pages/first.json        the first page (served for a request without a cursor)
  pages/<cursor>.json     every further page, named by its opaque cursor
  order.txt               the cursor that fetches each page, in walk order ('' for the first)
and prints one JSON summary line (chats, pages, bytes, ...) on stdout.

The mix follows what Linq accounts look like (and src/demo.rs): chats spread unevenly over a
few dozen account numbers, mostly iMessage with SMS, RCS and a few null or newer services,
~12% group chats with 2-5 other participants, ~15% archived, participants that left or were
removed, e-mail handles, display names that are numbers, names with quotes and unicode, both
health fields (health_score on ~75% of chats, health_status on ~90%), and the odd field the
exporter does not know. Cursors are random URL-safe tokens: a client cannot compute them.
Deterministic for a given --seed.
"""

import argparse
import base64
import json
import os
import random
import sys
import time
import uuid

SERVICES = [("iMessage", 0.66), ("SMS", 0.20), ("RCS", 0.10), (None, 0.02), ("WhatsApp", 0.02)]
FIRST = ["Ann", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Günter", "Hiro", "Isabel", "José",
         "Kofi", "Lena", "Mateo", "Nadia", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Yuki"]
LAST = ["Smith", "O'Neil", "García", "Müller", "Nguyen", "Kowalski", "Okafor", "Rossi", "Tanaka",
        "Dubois", "Andersson", "Haddad"]
REASONS_LOW = ["low reply rate", "spam reports", "many unanswered messages", "recipient blocked"]
REASONS_OK = ["healthy engagement", "good engagement", "regular two-way conversation"]


def pick(rng, weighted):
    x = rng.random()
    for value, w in weighted:
        if x < w:
            return value
        x -= w
    return weighted[-1][0]


def iso(rng, lo=1_735_689_600, hi=1_778_000_000):  # 2025-01-01 .. 2026-05
    t = rng.randrange(lo, hi)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)), t


def e164(rng):
    area = rng.choice([212, 213, 305, 312, 415, 512, 617, 646, 702, 718, 773, 917])
    return f"+1{area}{rng.randrange(2_000_000, 9_999_999):07d}"


def cursor_token(rng):
    return base64.urlsafe_b64encode(rng.getrandbits(192).to_bytes(24, "big")).decode()


def chat(rng, account):
    cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    service = pick(rng, SERVICES)
    is_group = rng.random() < 0.12
    created, created_t = iso(rng, hi=1_770_000_000)
    updated, updated_t = iso(rng, lo=created_t)
    hs = service or "SMS"
    handles = [{"id": f"{cid[:8]}-me", "handle": account, "joined_at": created, "service": hs,
                "is_me": True, "left_at": None, "status": "active"}]
    for k in range(rng.randrange(2, 6) if is_group else 1):
        handle = f"{rng.choice(FIRST).lower()}.{rng.randrange(10_000)}@example.com" \
            if rng.random() < 0.08 else e164(rng)
        status = pick(rng, [("active", 0.85), ("left", 0.08), ("removed", 0.04), (None, 0.03)])
        h = {"id": f"{cid[:8]}-{k}", "handle": handle, "joined_at": created, "service": hs,
             "is_me": False if rng.random() < 0.95 else None, "status": status}
        if status == "left":
            h["left_at"] = updated
        elif rng.random() < 0.5:
            h["left_at"] = None
        handles.append(h)
    if is_group:
        display = rng.choice([f"{rng.choice(LAST)} family", f"Order #{rng.randrange(10**6)}",
                              f"Team \"{rng.choice(FIRST)}\" ✓", None])
    else:
        display = rng.choice([handles[1]["handle"], f"{rng.choice(FIRST)} {rng.choice(LAST)}", None])
    c = {"id": cid, "created_at": created, "updated_at": updated, "display_name": display,
         "service": service, "is_archived": rng.random() < 0.15, "is_group": is_group,
         "handles": handles}
    score = None
    if rng.random() < 0.75:
        score = min(100.0, max(0.0, 15 + 85 * rng.random() ** 0.6 + rng.uniform(-10, 10)))
        score = round(score, 1) if rng.random() < 0.25 else int(round(score))
        h_at, _ = iso(rng, lo=updated_t - 86_400)
        c["health_score"] = {"reason": rng.choice(REASONS_LOW if score < 60 else REASONS_OK),
                             "score": score, "updated_at": h_at}
    elif rng.random() < 0.3:
        c["health_score"] = None
    if rng.random() < 0.90:
        s = score if score is not None else rng.uniform(0, 100)
        status = "OPTED_OUT" if rng.random() < 0.02 else \
            "CRITICAL" if s < 30 else "AT_RISK" if s < 60 else "HEALTHY"
        h_at, _ = iso(rng, lo=updated_t - 86_400)
        c["health_status"] = {"status": status, "doc_url": "https://docs.linqapp.com/chat-health",
                              "updated_at": h_at}
    if rng.random() < 0.01:
        c["labels"] = {"crm_id": rng.randrange(10**9), "tags": ["vip"]}  # a field the exporter ignores
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--chats", type=int, default=100_000)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--numbers", type=int, default=20)
    ap.add_argument("--seed", type=int, default=6)
    a = ap.parse_args()
    if a.chats < 1 or not 1 <= a.page_size <= 100 or a.numbers < 1:
        sys.exit("gen_dataset: need --chats >= 1, --page-size 1..100, --numbers >= 1")

    rng = random.Random(a.seed)
    accounts = [f"+1415555{100 + i:04d}" for i in range(a.numbers)]
    weights = [1.0 / (1 + i) ** 0.7 for i in range(a.numbers)]  # a few busy numbers, a long tail
    pages_dir = os.path.join(a.out, "pages")
    os.makedirs(pages_dir, exist_ok=True)

    n_pages = (a.chats + a.page_size - 1) // a.page_size
    cursors = [""] + [cursor_token(rng) for _ in range(n_pages - 1)]
    if len(set(cursors)) != n_pages:
        sys.exit("gen_dataset: cursor collision")
    total_bytes, written = 0, 0
    for p in range(n_pages):
        chats = []
        for _ in range(min(a.page_size, a.chats - written)):
            account = rng.choices(accounts, weights)[0]
            chats.append(chat(rng, account))
            written += 1
        nxt = cursors[p + 1] if p + 1 < n_pages else None
        body = json.dumps({"chats": chats, "next_cursor": nxt}, ensure_ascii=False,
                          separators=(",", ":")).encode()
        name = "first" if p == 0 else cursors[p]
        with open(os.path.join(pages_dir, name + ".json"), "wb") as f:
            f.write(body)
        total_bytes += len(body)
    with open(os.path.join(a.out, "order.txt"), "w") as f:
        f.write("\n".join(cursors) + "\n")
    print(json.dumps({"chats": written, "pages": n_pages, "bytes": total_bytes,
                      "numbers": a.numbers, "seed": a.seed}))


if __name__ == "__main__":
    main()
