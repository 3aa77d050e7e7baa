#!/usr/bin/env bash
# The status page in a real headless Chromium: the exporter sweeps a fixture (served by a static
# file server on 127.0.0.1) in which a display name holds <script> and an onerror handler; the
# page must render, show the fixture's numbers, show the hostile name as text, and run nothing.
#   scripts/browser-test.sh                      # the test (CI)
#   scripts/browser-test.sh --screenshot FILE    # also save a screenshot of the demo's page
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LINQ_EXPORTER_BIN:-target/release/linq-exporter}
SHOT=""
if [ "${1:-}" = "--screenshot" ]; then SHOT=${2:?--screenshot needs a file}; fi
[ -x "$BIN" ] || { echo "browser-test: $BIN missing (cargo build --release --locked)"; exit 1; }
command -v chromium >/dev/null || { echo "browser-test: chromium missing (apt-get install chromium)"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url, seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "browser-test: $1 not up within $2s"; return 1; }
    sleep 0.1
  done
}
chrome() { # extra args...
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" "$@" 2>"$work/chromium.log"
}

# A static "Linq API": /v3/chats and /v3/phone_numbers as files (the query string is ignored).
mkdir -p "$work/api/v3"
cp tests/fixtures/status_page_chats.json "$work/api/v3/chats"
echo '{"phone_numbers":[{"id":"pn-1","phone_number":"+14155551234","reputation":{"status":"AT_RISK","doc_url":null}}]}' >"$work/api/v3/phone_numbers"
api_port=$(free_port)
python3 -m http.server "$api_port" --bind 127.0.0.1 --directory "$work/api" >/dev/null 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$api_port/v3/chats" 10

port=$(free_port)
"$BIN" --linq.base-url "http://127.0.0.1:$api_port" --linq.api-key browser-test-key \
  --linq.chat-display-name --web.listen-address "127.0.0.1:$port" --log.level warn &
pids+=($!)
wait_http "http://127.0.0.1:$port/readyz" 20

chrome --dump-dom "http://127.0.0.1:$port/" >"$work/dom.html"
chrome --screenshot="$work/page.png" --window-size=1200,1400 "http://127.0.0.1:$port/" >/dev/null

python3 - "$work/dom.html" "$work/page.png" <<'PY'
import sys, html.parser
dom = open(sys.argv[1], encoding="utf-8").read()
passed = failed = 0
def check(name, ok):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + name)
    passed += ok
    failed += not ok

class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.cur, self.title, self.in_title = {}, None, "", False
        self.scripts = self.imgs = 0
        self.body_attrs = {}
        self.names = []
        self.in_name = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script": self.scripts += 1
        if tag == "img": self.imgs += 1
        if tag == "body": self.body_attrs = a
        if tag == "title": self.in_title = True
        if "id" in a: self.cur = a["id"]; self.ids[self.cur] = ""
        if a.get("class") == "display-name": self.in_name = True; self.names.append("")
    def handle_endtag(self, tag):
        if tag == "title": self.in_title = False
        if tag == "td": self.in_name = False
        self.cur = None
    def handle_data(self, d):
        if self.in_title: self.title += d
        if self.cur: self.ids[self.cur] += d
        if self.in_name: self.names[-1] += d
p = P(); p.feed(dom)
check("page rendered with its title", p.title == "Linq exporter")
check("total chats = 4", p.ids.get("total-chats") == "4")
check("archived chats = 1", p.ids.get("archived-chats") == "1")
check("archived state unknown = 1 (chat-3's page omits is_archived)", p.ids.get("archived-unknown-chats") == "1")
check("group chats = 1", p.ids.get("group-chats") == "1")
check("last sweep succeeded", p.ids.get("sweep-result") == "success")
check("worst chats listed", "chat-4" in dom and "12.5" in dom)
check("line reputation shown", "AT_RISK" in dom and "+14155551234" in dom)
hostile = "<script>document.title='pwned';document.body.setAttribute('data-pwned','1')</script><img src=x onerror=\"document.title='pwned'\">"
check("hostile display name shown as text", hostile in p.names)
check("no script element in the DOM", p.scripts == 0)
check("no injected img element", p.imgs == 0)
check("nothing ran (title and body untouched)", "pwned" not in p.title and "data-pwned" not in p.body_attrs)
import os
check("screenshot taken", os.path.getsize(sys.argv[2]) > 10000)

# The "By health score" bar, as drawn: the fixture scores 12.5, 45 and 82, one chat each, so
# the bar shows a red, an orange and a green third (the dashboards' threshold colours).
import struct, zlib
def png_pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p0 = a + b - c; pa, pb, pc = abs(p0 - a), abs(p0 - b), abs(p0 - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(line)); prev = line
    return w, bpp, out
w, bpp, rows = png_pixels(sys.argv[2])
def count(rgb):
    px = bytes(rgb)
    return sum(sum(1 for x in range(0, w * bpp, bpp) if row[x:x + 3] == px) for row in rows)
red, orange, green = count((0xf2, 0x49, 0x5c)), count((0xff, 0x98, 0x30)), count((0x73, 0xbf, 0x69))
print(f"     score bar pixels: red {red}, orange {orange}, green {green}")
check("score bar drawn in red, orange and green", min(red, orange, green) > 1000)
check("score bar thirds about equal", max(red, orange, green) < 1.2 * min(red, orange, green))
print(f"browser: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY

if [ -n "$SHOT" ]; then
  demo_port=$(free_port)
  "$BIN" --demo --linq.chat-display-name --web.listen-address "127.0.0.1:$demo_port" --log.level warn &
  pids+=($!)
  wait_http "http://127.0.0.1:$demo_port/readyz" 30
  chrome --screenshot="$work/demo.png" --window-size=1100,1500 "http://127.0.0.1:$demo_port/" >/dev/null
  cp "$work/demo.png" "$SHOT"
  echo "browser-test: screenshot saved to $SHOT"
fi
