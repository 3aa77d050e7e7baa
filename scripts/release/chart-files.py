#!/usr/bin/env python3
"""Copy dashboards/*.json into the Helm chart (charts/linq-exporter/files/dashboards/).

    scripts/release/chart-files.py            # write the copies
    scripts/release/chart-files.py --check    # exit 1 if a copy is missing, stale or extra

Helm's .Files reads only files inside the chart, so the chart carries a copy of each dashboard;
dashboards/ stays the one source and CI runs --check. (The rule files are copied by
scripts/deploy/gen-prometheusrule.py.)
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "dashboards")
TARGET = os.path.join(ROOT, "charts", "linq-exporter", "files", "dashboards")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    want = {}
    for name in sorted(os.listdir(SOURCE)):
        if name.endswith(".json"):
            with open(os.path.join(SOURCE, name), "rb") as f:
                want[name] = f.read()
    if not want:
        print("no dashboards/*.json", file=sys.stderr)
        return 1
    have = {}
    if os.path.isdir(TARGET):
        for name in sorted(os.listdir(TARGET)):
            with open(os.path.join(TARGET, name), "rb") as f:
                have[name] = f.read()
    if args.check:
        bad = sorted(n for n in set(want) | set(have) if want.get(n) != have.get(n))
        for n in bad:
            what = "missing" if n not in have else "extra" if n not in want else "stale"
            print(f"charts/linq-exporter/files/dashboards/{n} is {what}: run scripts/release/chart-files.py")
        if not bad:
            print(f"chart dashboards match dashboards/ ({', '.join(want)})")
        return 1 if bad else 0
    os.makedirs(TARGET, exist_ok=True)
    for n in set(have) - set(want):
        os.remove(os.path.join(TARGET, n))
    for n, data in want.items():
        with open(os.path.join(TARGET, n), "wb") as f:
            f.write(data)
    print(f"wrote {len(want)} dashboards to charts/linq-exporter/files/dashboards/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
