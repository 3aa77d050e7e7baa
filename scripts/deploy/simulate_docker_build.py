#!/usr/bin/env python3
"""Runs the Dockerfile's build steps without a Docker engine.

    python3 scripts/deploy/simulate_docker_build.py [--counts FILE] [--keep DIR]

There is no Docker engine on the CI machines, but the builder image is Debian 12 with the same
Rust toolchain as they have. So this script interprets the Dockerfile itself: it builds the build
context from .dockerignore, then replays every stage in its own directory (WORKDIR, COPY from the
context or from an earlier stage, ARG/ENV, RUN through /bin/sh), with the absolute directories the
Dockerfile creates (/src, /out, ...) mapped into that directory. This proves that the RUN commands
work on the real sources: the planner's stubs, the dependency-caching layer, `cargo clean` of the
crate, the real build with the revision, and the final COPY into the runtime stage; then it runs
the resulting binary. It does not check the base images (hadolint and check_manifests.py do).

Prints one line per check and `docker-sim: N passed, M failed`; exit status 1 on any failure.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_manifests import ROOT, dockerignore_admits  # noqa: E402
from checks import Checker  # noqa: E402

SYSTEM_DIRS = {"tmp", "usr", "bin", "sbin", "etc", "dev", "proc", "sys", "lib", "lib64", "var", "run"}

CK = Checker()
check = CK.check


def instructions(text):
    """(keyword, rest) per instruction, continuation lines joined, comments dropped."""
    out = []
    logical = ""
    for line in text.splitlines():
        if not logical and line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        if logical.strip():
            word, _, rest = logical.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        logical = ""
    return out


def substitute(value, env):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def context_files():
    patterns = [l.strip() for l in open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8")
                if l.strip() and not l.strip().startswith("#")]
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [f for f in files if dockerignore_admits(patterns, f) and os.path.isfile(os.path.join(ROOT, f))]


def copy_tree(src, dst):
    if os.path.isdir(src):
        shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts")
    parser.add_argument("--keep", help="build in this directory and keep it")
    args = parser.parse_args()

    text = open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8").read()
    steps = instructions(text)
    work = args.keep or tempfile.mkdtemp(prefix="docker-sim-")
    os.makedirs(work, exist_ok=True)
    try:
        context = os.path.join(work, "context")
        for f in context_files():
            copy_tree(os.path.join(ROOT, f), os.path.join(context, f))

        # The absolute directories the Dockerfile itself creates, to map into each stage's root.
        owned = set()
        for word, rest in steps:
            if word in ("WORKDIR", "COPY", "RUN"):
                owned.update(d for d in re.findall(r"(?<![\w.$/-])/([A-Za-z0-9_-]+)(?=/|\s|$)", rest)
                             if d not in SYSTEM_DIRS)

        build_args = {"REVISION": "docker-sim-0123"}  # as `docker build --build-arg REVISION=...`
        global_args = {}
        stages = {}
        stage = None
        env = {}
        rust_version = None
        owned_re = re.compile(r"(?<![\w.$/-])/(" + "|".join(map(re.escape, sorted(owned))) + r")(?=/|\s|$|\"|')") \
            if owned else None
        for word, rest in steps:
            if word == "ARG" and stage is None:
                name, _, value = rest.partition("=")
                global_args[name] = build_args.get(name, value)
                continue
            if word == "FROM":
                m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
                image, name = substitute(m.group(1), global_args), m.group(2) or f"stage{len(stages)}"
                if image.startswith("rust:"):
                    rust_version = image.split(":")[1].split("-")[0]
                stage = {"name": name, "root": os.path.join(work, name), "workdir": "/", "args": {}}
                stages[name] = stage
                os.makedirs(stage["root"], exist_ok=True)
                env = {k: v for k, v in os.environ.items()
                       if k not in ("CARGO_TARGET_DIR", "LINQ_EXPORTER_REVISION", "RUSTFLAGS")}
                continue
            if stage is None:
                continue
            root = stage["root"]

            def inside(path):
                """An image path, always inside this stage's root (never the host's)."""
                path = path if path.startswith("/") else os.path.join(stage["workdir"], path)
                return os.path.join(root, os.path.normpath(path).lstrip("/"))

            if word == "WORKDIR":
                stage["workdir"] = substitute(rest, {**global_args, **stage["args"]})
                os.makedirs(inside(stage["workdir"]), exist_ok=True)
            elif word == "ARG":
                name, _, value = rest.partition("=")
                if name in build_args:
                    value = build_args[name]
                elif not value:
                    value = global_args.get(name, "")
                stage["args"][name] = substitute(value, {**global_args, **stage["args"]})
            elif word == "ENV":
                name, _, value = rest.partition("=")
                env[name] = substitute(value, {**global_args, **stage["args"], **env})
            elif word == "COPY":
                parts = shlex.split(rest)
                source_stage = None
                if parts[0].startswith("--from="):
                    source_stage = parts.pop(0).split("=", 1)[1]
                *srcs, dst = parts
                dst_path = inside(dst)
                for src in srcs:
                    if source_stage:
                        src_path = os.path.join(stages[source_stage]["root"], src.lstrip("/"))
                    else:
                        src_path = os.path.join(context, src)
                    if os.path.isdir(src_path):
                        copy_tree(src_path, dst_path)  # a directory's contents go into dst
                    elif dst.endswith("/") or os.path.isdir(dst_path):
                        copy_tree(src_path, os.path.join(dst_path, os.path.basename(src)))
                    else:
                        copy_tree(src_path, dst_path)
                check(f"{stage['name']}: COPY {rest}", os.path.exists(dst_path), f"{dst_path} missing")
            elif word == "RUN":
                cmd = owned_re.sub(lambda m: os.path.join(root, m.group(1)), rest) if owned_re else rest
                run_env = {**env, **stage["args"]}
                started = time.monotonic()
                out = subprocess.run(["/bin/sh", "-c", cmd], cwd=inside(stage["workdir"]), env=run_env,
                                     capture_output=True, text=True)
                took = time.monotonic() - started
                check(f"{stage['name']}: RUN {rest[:90]}{'...' if len(rest) > 90 else ''} ({took:.0f}s)",
                      out.returncode == 0, (out.stdout + out.stderr)[-1500:])
                if out.returncode != 0:
                    break
                if "cargo build" in rest:
                    compiled = re.findall(r"Compiling (\S+)", out.stderr)
                    if stage.get("dep_layer_done"):
                        check(f"{stage['name']}: after the dependency layer only linq-exporter is compiled",
                              compiled == ["linq-exporter"], f"compiled {compiled}")
                    stage["dep_layer_done"] = True

        runtime = list(stages.values())[-1]
        local = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout
        check(f"local toolchain ({local.strip()}) is the builder's rust:{rust_version}",
              rust_version is not None and re.search(rf"\b{re.escape(rust_version)}(\.|\s)", local) is not None)
        entry = re.search(r'ENTRYPOINT\s+\["([^"]+)"', text)
        binary = os.path.join(runtime["root"], entry.group(1).lstrip("/")) if entry else ""
        ok = os.path.isfile(binary) and os.access(binary, os.X_OK)
        if check(f"{runtime['name']}: ENTRYPOINT {entry.group(1) if entry else '?'} exists and is executable", ok):
            out = subprocess.run([binary, "--demo", "--once"], capture_output=True, text=True, timeout=180)
            rev = re.search(r'linq_exporter_build_info\{[^}]*revision="([^"]*)"', out.stdout)
            check(f"{runtime['name']}: the image's binary runs --demo --once (linq_up 1)",
                  out.returncode == 0 and re.search(r"^linq_up 1$", out.stdout, re.M) is not None,
                  out.stderr[-500:])
            check(f"{runtime['name']}: build_info revision comes from the REVISION build arg",
                  rev is not None and rev.group(1) == build_args["REVISION"],
                  f"revision {rev.group(1) if rev else None}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    return CK.finish("docker-sim", args.counts)


if __name__ == "__main__":
    sys.exit(main())
