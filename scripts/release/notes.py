#!/usr/bin/env python3
"""Release notes and version checks for a tag, from CHANGELOG.md (Keep a Changelog).

    scripts/release/notes.py notes VERSION         # print VERSION's section (exit 1 if none)
    scripts/release/notes.py check-tag vVERSION    # the tag equals Cargo.toml's and Chart.yaml's
                                                    # version, and CHANGELOG.md has its section
    scripts/release/notes.py --self-test           # the checks above fail when they should

The release workflow runs check-tag first: a tag that differs from Cargo.toml's version (or a
version without a CHANGELOG section) fails the release before anything is built or pushed.
"""

import os
import re
import sys
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?\s*$")


def sections(text):
    """{version: body} for every `## [version] - date` (and `## [Unreleased]`) heading."""
    out, current, lines = {}, None, []
    for line in text.splitlines():
        if line.startswith("## "):
            if current is not None:
                out[current] = "\n".join(lines).strip()
            m = HEADING.match(line)
            if not m:
                raise ValueError(f"CHANGELOG.md: not a Keep a Changelog heading: {line!r}")
            version, date = m.group("version"), m.group("date")
            if version != "Unreleased" and not date:
                raise ValueError(f"CHANGELOG.md: {version} has no release date (## [{version}] - YYYY-MM-DD)")
            current, lines = version, []
        elif line.startswith("[") and "]: http" in line:
            continue  # link reference definitions
        elif current is not None:
            lines.append(line)
    if current is not None:
        out[current] = "\n".join(lines).strip()
    return out


def versions():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        cargo = tomllib.load(f)["package"]["version"]
    with open(os.path.join(ROOT, "charts", "linq-exporter", "Chart.yaml"), encoding="utf-8") as f:
        chart = yaml.safe_load(f)
    return cargo, str(chart["version"]), str(chart["appVersion"])


def check_tag(tag, changelog, cargo, chart, app):
    problems = []
    if not re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", tag):
        problems.append(f"tag {tag!r} is not vMAJOR.MINOR.PATCH[-PRE]")
    version = tag[1:]
    if version != cargo:
        problems.append(f"tag {tag} but Cargo.toml's version is {cargo}")
    if version != chart or version != app:
        problems.append(f"tag {tag} but Chart.yaml's version/appVersion is {chart}/{app}")
    try:
        secs = sections(changelog)
        if not secs.get(version):
            problems.append(f"CHANGELOG.md has no section ## [{version}] - YYYY-MM-DD with content")
    except ValueError as e:
        problems.append(str(e))
    return problems


def self_test():
    good = "# Changelog\n\n## [Unreleased]\n\n## [1.2.0] - 2026-01-02\n\n### Added\n\n- x\n\n[1.2.0]: https://e/x\n"
    cases = [
        (check_tag("v1.2.0", good, "1.2.0", "1.2.0", "1.2.0") == [], "matching tag passes"),
        (check_tag("v1.2.1", good, "1.2.0", "1.2.0", "1.2.0") != [], "tag != Cargo.toml fails"),
        (check_tag("v1.2.0", good, "1.2.0", "1.1.0", "1.2.0") != [], "tag != Chart.yaml fails"),
        (check_tag("1.2.0", good, "1.2.0", "1.2.0", "1.2.0") != [], "tag without v fails"),
        (check_tag("v1.3.0", good, "1.3.0", "1.3.0", "1.3.0") != [], "no CHANGELOG section fails"),
        (check_tag("v1.2.0", good.replace(" - 2026-01-02", ""), "1.2.0", "1.2.0", "1.2.0") != [],
         "a section without a date fails"),
        (sections(good)["1.2.0"] == "### Added\n\n- x", "notes are the section's body"),
    ]
    bad = [name for ok, name in cases if not ok]
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
        real = sections(f.read())  # the real file parses
    cargo, chart, app = versions()
    if not (cargo == chart == app):
        bad.append(f"Cargo.toml {cargo} and Chart.yaml {chart}/{app} agree")
    for name in bad:
        print(f"FAIL notes self-test: {name}")
    print(f"notes self-test: {len(cases) + 1 - len(bad)} passed, {len(bad)} failed "
          f"(CHANGELOG.md sections: {', '.join(real)})")
    return 1 if bad else 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if len(argv) != 2 or argv[0] not in ("notes", "check-tag"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
        changelog = f.read()
    if argv[0] == "notes":
        body = sections(changelog).get(argv[1].removeprefix("v"))
        if not body:
            print(f"CHANGELOG.md has no section for {argv[1]}", file=sys.stderr)
            return 1
        print(body)
        return 0
    problems = check_tag(argv[1], changelog, *versions())
    for p in problems:
        print(f"release: {p}", file=sys.stderr)
    if not problems:
        print(f"release: {argv[1]} matches Cargo.toml, Chart.yaml and CHANGELOG.md")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
