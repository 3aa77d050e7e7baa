#!/usr/bin/env python3
"""Fails when the crate's modules import each other in a circle.

Reads every src/**/*.rs (without its `#[cfg(test)] mod tests`), collects the `crate::...` paths
it uses, resolves each to the longest module it names, and looks for cycles twice: between
modules (files), and between top-level directories (`api`, `sweep`, `metrics`, `http`, ...),
whose dependencies must point one way, from serving down to the API. `--print` lists the graph.
A module's own children and parent are not counted (a `mod.rs` declares its children).
"""

import glob
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def module_name(path):
    rel = os.path.relpath(path, os.path.join(ROOT, "src"))[:-3]
    if rel.endswith("/mod"):
        rel = rel[: -len("/mod")]
    return rel.replace("/", "::")


def references(text):
    cut = text.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        text = text[:cut]
    # Doc comments may name modules in links; only code counts.
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
    refs = set(re.findall(r"crate::([a-z_]+(?:::[a-z_]+)*)", text))
    for group in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
        for item in re.split(r",\s*", group):
            item = item.strip()
            if item:
                refs.add(re.split(r"::\{|\s", item)[0])
    return refs


def graph():
    mods = {}
    for f in glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True):
        if os.path.basename(f) in ("main.rs", "lib.rs") and os.path.dirname(f) == os.path.join(ROOT, "src"):
            continue
        with open(f, encoding="utf-8") as fh:
            mods[module_name(f)] = references(fh.read())
    names = set(mods)
    g = {}
    for m, refs in mods.items():
        deps = set()
        for r in refs:
            parts = r.split("::")
            for k in range(len(parts), 0, -1):
                cand = "::".join(parts[:k])
                if cand in names:
                    deps.add(cand)
                    break
        g[m] = {d for d in deps if d != m and not d.startswith(m + "::") and not m.startswith(d + "::")}
    return g


def cycles(g):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main():
    g = graph()
    top = {}
    for m, deps in g.items():
        t = m.split("::")[0]
        top.setdefault(t, set()).update(d.split("::")[0] for d in deps if d.split("::")[0] != t)
    if "--print" in sys.argv[1:]:
        for m in sorted(g):
            print(f"{m} -> {', '.join(sorted(g[m])) or '-'}")
        print()
        for t in sorted(top):
            print(f"{t}/ -> {', '.join(sorted(top[t])) or '-'}")
    problems = [("modules", c) for c in cycles(g)] + [("directories", c) for c in cycles(top)]
    for kind, c in problems:
        print(f"FAIL import cycle between {kind}: {' -> '.join(c)}")
    print(f"layout: {len(g)} modules, {len(top)} top-level modules; {len(problems)} cycle(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
