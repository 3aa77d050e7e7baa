#!/usr/bin/env python3
"""Checks the documentation of linq-exporter against the files and the source it describes.

    python3 scripts/check-docs.py              # check this repository; exit 1 listing each problem
    python3 scripts/check-docs.py --self-test  # prove the checks catch what they should

Checks:
  1. links: every relative Markdown link in README.md, docs/*.md and deploy/kubernetes/README.md
     points at a file that exists and, with a #fragment, at an anchor the target has (GitHub's
     heading anchors: lowercase, punctuation but - and _ removed, spaces to -, repeats suffixed
     -1, -2, ...; plus explicit <a id="..."> / <a name="...">);
  2. runbooks: every runbook_url in the YAML under deploy/ and dashboards/ is
     https://github.com/linq-exporter/linq-exporter/blob/main/<path>#<anchor> with <path> a file
     here that has <anchor>;
  3. flags: the flag tables of docs/configuration.md (columns flag | env | default | ...) agree
     with the clap definitions in src/**/*.rs (wherever the CLI module lives): every long flag of
     the top-level Parser struct (and of the structs it flattens) is in a table under a heading
     that names no subcommand, with the same env var and, where the source declares a default,
     the same default; the flags of each subcommand are in a table under a heading that names it;
     no table lists a flag the source lacks.

Python 3 with the standard library and PyYAML only.
"""

import argparse
import glob
import os
import re
import shutil
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("check-docs: PyYAML is required (apt-get install python3-yaml, or pip install pyyaml)")

REPO_URL = "https://github.com/linq-exporter/linq-exporter/blob/main/"
CONFIG_DOC = "docs/configuration.md"


def md_files(root):
    files = ["README.md"] + sorted(os.path.relpath(p, root)
                                   for p in glob.glob(os.path.join(root, "docs", "*.md")))
    files.append("deploy/kubernetes/README.md")
    return [f for f in files if os.path.isfile(os.path.join(root, f))]


# ------------------------------------------------------------------------------------------------
# Markdown: links and anchors
# ------------------------------------------------------------------------------------------------

FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE_RE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield n, line


def strip_code_spans(line):
    """The line with the contents of `code spans` blanked (links inside them are not links)."""
    return re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)


def slug(text):
    """GitHub's anchor for a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)                      # inline HTML
    text = text.replace("`", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)                      # \w keeps letters, digits, _
    return text.replace(" ", "-")


HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
HTML_ANCHOR_RE = re.compile(r"<a\s+[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)


def anchors_of(text):
    anchors = set()
    seen = {}
    for _n, line in prose_lines(text):
        for m in HTML_ANCHOR_RE.finditer(line):
            anchors.add(m.group(1))
        m = HEADING_RE.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


LINK_RE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF_RE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")


def links_of(text):
    """(line number, target) of every inline link, image and reference definition."""
    for n, line in prose_lines(text):
        plain = strip_code_spans(line)
        for m in LINK_RE.finditer(plain):
            yield n, m.group(1)
        m = REF_DEF_RE.match(plain)
        if m:
            yield n, m.group(1)


def is_external(target):
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:", target)) or target.startswith("//")


class Anchors:
    def __init__(self, root):
        self.root = root
        self.cache = {}

    def get(self, rel):
        if rel not in self.cache:
            with open(os.path.join(self.root, rel), encoding="utf-8") as f:
                self.cache[rel] = anchors_of(f.read())
        return self.cache[rel]


def check_target(root, anchors, where, rel_path, fragment, problems):
    """rel_path is relative to root; an empty fragment means no anchor to check."""
    full = os.path.join(root, rel_path)
    if not os.path.exists(full):
        problems.append(f"{where}: {rel_path} does not exist")
        return
    if fragment:
        if os.path.isdir(full) or not rel_path.endswith(".md"):
            problems.append(f"{where}: #{fragment} in {rel_path}, which is not a Markdown file")
        elif fragment not in anchors.get(rel_path):
            problems.append(f"{where}: {rel_path} has no anchor #{fragment}")


def check_links(root, anchors, problems):
    n_links = 0
    for rel in md_files(root):
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()
        for line_no, target in links_of(text):
            if not target or is_external(target):
                continue
            n_links += 1
            path, _, fragment = target.partition("#")
            if path:
                resolved = os.path.normpath(os.path.join(os.path.dirname(rel), path))
            else:
                resolved = rel
            if resolved.startswith(".."):
                problems.append(f"{rel}:{line_no}: link {target} leaves the repository")
                continue
            check_target(root, anchors, f"{rel}:{line_no}: link {target}", resolved, fragment,
                         problems)
    return n_links


# ------------------------------------------------------------------------------------------------
# runbook_url in YAML
# ------------------------------------------------------------------------------------------------

def find_key(node, key):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from find_key(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from find_key(v, key)


def check_runbooks(root, anchors, problems):
    n_urls = 0
    files = []
    for top in ("deploy", "dashboards"):
        for ext in ("yaml", "yml"):
            files += glob.glob(os.path.join(root, top, "**", f"*.{ext}"), recursive=True)
    for path in sorted(files):
        rel = os.path.relpath(path, root)
        try:
            with open(path, encoding="utf-8") as f:
                docs = list(yaml.safe_load_all(f))
        except yaml.YAMLError as e:
            problems.append(f"{rel}: does not parse as YAML: {e}")
            continue
        for doc in docs:
            for url in find_key(doc, "runbook_url"):
                n_urls += 1
                where = f"{rel}: runbook_url {url}"
                if not url.startswith(REPO_URL):
                    problems.append(f"{where}: not under {REPO_URL}")
                    continue
                path_part, _, fragment = url[len(REPO_URL):].partition("#")
                if not fragment:
                    problems.append(f"{where}: no #anchor")
                    continue
                check_target(root, anchors, where, os.path.normpath(path_part), fragment,
                             problems)
    return n_urls


# ------------------------------------------------------------------------------------------------
# Rust: the clap definitions
# ------------------------------------------------------------------------------------------------

def blank_rust(src):
    """src with comments and the insides of string and char literals replaced by spaces (same
    length, newlines kept), so brackets can be matched on it."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (i == 0 or not (
                src[i - 1].isalnum() or src[i - 1] == "_")):
            end = src.find('"' + m.group(1), m.end())
            end = n if end < 0 else end
            blank(m.end(), end)
            i = end + 1 + len(m.group(1))
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            m = re.compile(r"'(\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'").match(src, i)
            if m:
                blank(i + 1, m.end() - 1)
                i = m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


OPEN = {"(": ")", "[": "]", "{": "}"}


def match_bracket(blanked, i):
    """Index just past the bracket that closes the one at i."""
    stack = []
    for j in range(i, len(blanked)):
        c = blanked[j]
        if c in OPEN:
            stack.append(OPEN[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                raise ValueError(f"unbalanced {c!r} at {j}")
            if not stack:
                return j + 1
    raise ValueError(f"unclosed {blanked[i]!r} at {i}")


def split_top(text, blanked, sep=","):
    """Split text at sep characters outside brackets (and outside literals, per blanked)."""
    parts, depth, start = [], 0, 0
    for j, c in enumerate(blanked):
        if c in OPEN:
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append((text[start:j], blanked[start:j]))
            start = j + 1
    parts.append((text[start:], blanked[start:]))
    return [(t, b) for t, b in parts if t.strip()]


class Item:
    """A struct field or an enum variant with its outer attributes."""

    def __init__(self, name, attrs, kind, body=None, body_blanked=None, type_text=""):
        self.name, self.attrs, self.kind = name, attrs, kind
        self.body, self.body_blanked, self.type_text = body, body_blanked, type_text


def parse_items(body, blanked, variants=False):
    """Fields (name: Type) or enum variants (Name, Name {..}, Name(..)) of a braced body."""
    items, attrs, i, n = [], [], 0, len(body)
    ident = re.compile(r"\s*(?:pub(?:\([^)]*\))?\s+)?(r#)?([A-Za-z_]\w*)")
    while i < n:
        if blanked[i].isspace() or blanked[i] == ",":
            i += 1
            continue
        if blanked.startswith("#[", i) or blanked.startswith("#![", i):
            start = blanked.index("[", i)
            end = match_bracket(blanked, start)
            attrs.append((body[start + 1:end - 1], blanked[start + 1:end - 1]))
            i = end
            continue
        m = ident.match(blanked, i)
        if not m:
            i += 1
            continue
        name = m.group(2)
        j = m.end()
        while j < n and blanked[j].isspace():
            j += 1
        if variants:
            item = Item(name, attrs, "unit")
            if j < n and blanked[j] in "{(":
                end = match_bracket(blanked, j)
                item.kind = "struct" if blanked[j] == "{" else "tuple"
                item.body, item.body_blanked = body[j + 1:end - 1], blanked[j + 1:end - 1]
                j = end
            items.append(item)
            while j < n and blanked[j] != ",":  # a discriminant, if any
                j += 1
            i = j + 1
        else:
            if j >= n or blanked[j] != ":":
                i = j
                continue
            # The type runs to the next comma outside brackets and angle brackets.
            k, depth = j + 1, 0
            while k < n:
                c = blanked[k]
                if c in "([{<":
                    depth += 1
                elif c in ")]}>" and not (c == ">" and blanked[k - 1] == "-"):
                    depth -= 1
                elif c == "," and depth == 0:
                    break
                k += 1
            items.append(Item(name, attrs, "field", type_text=body[j + 1:k].strip()))
            i = k + 1
        attrs = []
    return items


def parse_attr_args(text, blanked):
    """`arg(long = "x", env = "Y", default_value_t = 3)` -> ("arg", {"long": '"x"', ...})."""
    m = re.match(r"\s*([\w:]+)\s*\(", blanked)
    if not m:
        return m, {}
    open_at = m.end() - 1
    close = match_bracket(blanked, open_at)
    args = {}
    for part, part_blanked in split_top(text[open_at + 1:close - 1],
                                        blanked[open_at + 1:close - 1]):
        key, eq, value = part.partition("=")
        if eq and "=" not in part_blanked.split("=", 1)[0]:
            args[key.strip()] = value.strip()
        else:
            args[part.strip()] = None
    return m.group(1), args


def rust_string(value):
    m = re.fullmatch(r'\s*"((?:[^"\\]|\\.)*)"\s*', value or "")
    if not m:
        return None
    return re.sub(r"\\(.)", r"\1", m.group(1))


class RustSource:
    def __init__(self, root):
        self.files = {}
        for path in sorted(glob.glob(os.path.join(root, "src", "**", "*.rs"), recursive=True)):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            self.files[os.path.relpath(path, root)] = (text, blank_rust(text))

    def definitions(self, kind, name=None):
        """(file, name, attrs text, body, body_blanked) of every struct/enum (named name)."""
        name_re = re.escape(name) if name else r"[A-Za-z_]\w*"
        pat = re.compile(r"\b" + kind + r"\s+(" + name_re + r")\b")
        for rel, (text, blanked) in self.files.items():
            for m in pat.finditer(blanked):
                j = m.end()
                while j < len(blanked) and blanked[j] not in "{;(":
                    j += 1
                if j >= len(blanked) or blanked[j] != "{":
                    continue
                end = match_bracket(blanked, j)
                # The attributes just above the item (derives, #[command(...)]).
                before = blanked[:m.start()]
                k = len(before)
                attr_text = ""
                while True:
                    stripped = before[:k].rstrip()
                    stripped = re.sub(r"pub(\([^)]*\))?\s*$", "", stripped).rstrip()
                    if not stripped.endswith("]"):
                        break
                    depth, p = 0, len(stripped) - 1
                    while p >= 0:
                        if stripped[p] == "]":
                            depth += 1
                        elif stripped[p] == "[":
                            depth -= 1
                            if depth == 0:
                                break
                        p -= 1
                    if p < 1 or stripped[p - 1] != "#":
                        break
                    attr_text = text[p - 1:len(stripped)] + attr_text
                    k = p - 1
                yield rel, m.group(1), attr_text, text[j + 1:end - 1], blanked[j + 1:end - 1]

    def parser_struct(self):
        """The top-level clap Parser struct: derives Parser (else: named Cli)."""
        found = [d for d in self.definitions("struct")
                 if re.search(r"derive\([^)]*\bParser\b", d[2])]
        if not found:
            found = list(self.definitions("struct", "Cli"))
        return found

    def const_value(self, name):
        for _rel, (text, blanked) in self.files.items():
            m = re.search(rf"\bconst\s+{re.escape(name)}\s*:[^=]+=\s*([^;]+);", blanked)
            if m:
                return text[m.start(1):m.end(1)].strip()
        return None


class Flag:
    def __init__(self, long, env, default, where):
        self.long, self.env, self.default, self.where = long, env, default, where


def literal_default(value, source):
    """A default as text for comparison, or None when it cannot be read statically."""
    if value is None:
        return None
    s = rust_string(value)
    if s is not None:
        return s
    v = value.strip()
    v = re.sub(r"\.(?:into|to_string|to_owned)\(\)$", "", v)
    s = rust_string(v)
    if s is not None:
        return s
    if re.fullmatch(r"-?[0-9][0-9_]*(\.[0-9_]+)?([eE][-+]?[0-9]+)?(_?[iuf](8|16|32|64|128|size))?", v):
        return re.sub(r"_?[iuf](8|16|32|64|128|size)$", "", v).replace("_", "")
    if v in ("true", "false"):
        return v
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", v):
        const = source.const_value(v)
        return literal_default(const, source) if const else None
    return None


def flags_of_fields(items, source, where, problems, seen_types=()):
    """Long flags of a struct's fields (following #[command(flatten)]); the subcommand type."""
    flags, subcommand_types = [], []
    for item in items:
        arg_args, is_arg, skip = {}, False, False
        for text, blanked in item.attrs:
            attr, args = parse_attr_args(text, blanked)
            if attr in ("arg", "clap"):
                is_arg = True
                arg_args.update(args)
                if "skip" in args:
                    skip = True
            elif attr == "command":
                inner_type = re.sub(r"^Option\s*<\s*(.*)\s*>$", r"\1", item.type_text).strip()
                inner_type = re.sub(r"^Box\s*<\s*(.*)\s*>$", r"\1", inner_type).strip()
                if "flatten" in args:
                    if inner_type in seen_types:
                        continue
                    defs = list(source.definitions("struct", inner_type))
                    if not defs:
                        problems.append(f"{where}: cannot find the flattened struct {inner_type}")
                        continue
                    rel, name, _a, body, body_blanked = defs[0]
                    f2, s2 = flags_of_fields(parse_items(body, body_blanked), source,
                                             f"{rel} {name}", problems,
                                             seen_types + (inner_type,))
                    flags += f2
                    subcommand_types += s2
                    skip = True
                elif "subcommand" in args:
                    subcommand_types.append(inner_type)
                    skip = True
        if skip or not is_arg or "long" not in arg_args:
            continue
        long = rust_string(arg_args["long"]) if arg_args["long"] else item.name.replace("_", "-")
        env = None
        if "env" in arg_args:
            env = rust_string(arg_args["env"]) if arg_args["env"] else item.name.upper()
        default = None
        if "default_value" in arg_args:
            default = literal_default(arg_args["default_value"], source)
        elif "default_value_t" in arg_args:
            default = literal_default(arg_args["default_value_t"], source)
        flags.append(Flag(long, env, default, f"{where}.{item.name}"))
    return flags, subcommand_types


def kebab(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


def cli_definition(root, problems):
    """{None: top-level flags, "<subcommand>": its flags} from src/**/*.rs."""
    source = RustSource(root)
    structs = source.parser_struct()
    if len(structs) != 1:
        problems.append(f"src/**/*.rs: expected one clap Parser struct, found "
                        f"{[f'{d[0]} {d[1]}' for d in structs]}")
        return None
    rel, name, _attrs, body, body_blanked = structs[0]
    flags, sub_types = flags_of_fields(parse_items(body, body_blanked), source,
                                       f"{rel} {name}", problems)
    result = {None: flags}
    for sub_type in sub_types:
        enums = list(source.definitions("enum", sub_type))
        if not enums:
            problems.append(f"{rel}: cannot find the subcommand enum {sub_type}")
            continue
        erel, ename, _a, ebody, eblanked = enums[0]
        for variant in parse_items(ebody, eblanked, variants=True):
            sub = kebab(variant.name)
            for text, blanked in variant.attrs:
                attr, args = parse_attr_args(text, blanked)
                if attr == "command" and rust_string(args.get("name")):
                    sub = rust_string(args["name"])
            where = f"{erel} {ename}::{variant.name}"
            if variant.kind == "struct":
                vflags, _ = flags_of_fields(parse_items(variant.body, variant.body_blanked),
                                            source, where, problems)
            elif variant.kind == "tuple":
                inner = variant.body.strip()
                defs = list(source.definitions("struct", inner))
                vflags = []
                if defs:
                    drel, dname, _a, dbody, dblanked = defs[0]
                    vflags, _ = flags_of_fields(parse_items(dbody, dblanked), source,
                                                f"{drel} {dname}", problems)
                else:
                    problems.append(f"{where}: cannot find the struct {inner}")
            else:
                vflags = []
            result[sub] = vflags
    return result


# ------------------------------------------------------------------------------------------------
# The flag tables of docs/configuration.md
# ------------------------------------------------------------------------------------------------

def split_row(line):
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def first_code(cell):
    m = re.search(r"`([^`]+)`", cell)
    return m.group(1) if m else None


class DocRow:
    def __init__(self, line_no, flag, env, default, default_cell):
        self.line_no, self.flag, self.env = line_no, flag, env
        self.default, self.default_cell = default, default_cell


def doc_tables(text, subcommands):
    """{None or subcommand: [DocRow]} from every table with flag and env columns."""
    tables = {}
    heading = ""
    lines = list(prose_lines(text))
    i = 0
    while i < len(lines):
        n, line = lines[i]
        m = HEADING_RE.match(line)
        if m:
            heading = m.group(2)
            i += 1
            continue
        cells = [c.lower() for c in split_row(line)] if line.strip().startswith("|") else []
        if "flag" in cells and "env" in cells and i + 1 < len(lines) and re.match(
                r"^\s*\|?\s*:?-{3,}", lines[i + 1][1]):
            cols = {name: cells.index(name) for name in ("flag", "env", "default") if name in cells}
            words = set(re.findall(r"[a-z0-9][a-z0-9\-]*", heading.lower()))
            named = [s for s in subcommands if s in words]
            key = named[0] if named else None
            rows = tables.setdefault(key, [])
            i += 2
            while i < len(lines) and lines[i][1].strip().startswith("|"):
                rn, rline = lines[i]
                row = split_row(rline)
                flag = first_code(row[cols["flag"]]) if cols["flag"] < len(row) else None
                if flag and flag.startswith("--"):
                    env = first_code(row[cols["env"]]) if cols["env"] < len(row) else None
                    if env and not re.fullmatch(r"[A-Z][A-Z0-9_]*", env):
                        env = None
                    default_cell = row[cols["default"]] if "default" in cols and cols[
                        "default"] < len(row) else ""
                    default = first_code(default_cell) if default_cell.startswith("`") else None
                    rows.append(DocRow(rn, flag[2:].split("=")[0].split()[0], env, default,
                                       default_cell))
                i += 1
            continue
        i += 1
    return tables


def same_default(doc, src):
    if doc == src:
        return True
    try:
        return float(doc) == float(src)
    except (TypeError, ValueError):
        return False


def check_flags(root, problems):
    path = os.path.join(root, CONFIG_DOC)
    if not os.path.isfile(path):
        problems.append(f"{CONFIG_DOC} does not exist")
        return 0
    cli = cli_definition(root, problems)
    if cli is None:
        return 0
    if not cli[None]:
        problems.append("src/**/*.rs: the clap Parser struct has no long flags (parser broken?)")
    with open(path, encoding="utf-8") as f:
        tables = doc_tables(f.read(), [s for s in cli if s])
    checked = 0
    for sub, flags in cli.items():
        what = "the top-level flags" if sub is None else f"subcommand {sub}"
        if not flags and sub is not None:
            continue
        rows = tables.get(sub)
        if rows is None:
            problems.append(f"{CONFIG_DOC}: no flag table for {what} (a table with flag and env "
                            "columns under a heading that names "
                            + ("no subcommand)" if sub is None else f"'{sub}')"))
            continue
        by_flag = {}
        for r in rows:
            if r.flag in by_flag:
                problems.append(f"{CONFIG_DOC}:{r.line_no}: --{r.flag} listed twice ({what})")
            by_flag[r.flag] = r
        src_flags = {fl.long: fl for fl in flags}
        for fl in flags:
            checked += 1
            r = by_flag.get(fl.long)
            if r is None:
                problems.append(f"{CONFIG_DOC}: --{fl.long} ({fl.where}) is not in the table of "
                                f"{what}")
                continue
            if r.env != fl.env:
                problems.append(f"{CONFIG_DOC}:{r.line_no}: --{fl.long}: env is "
                                f"{r.env or 'none'} in the table, {fl.env or 'none'} in "
                                f"{fl.where}")
            if fl.default is not None and not same_default(r.default, fl.default):
                problems.append(f"{CONFIG_DOC}:{r.line_no}: --{fl.long}: default is "
                                f"{r.default_cell or 'empty'} in the table, `{fl.default}` in "
                                f"{fl.where}")
            if fl.default is None and r.default is not None:
                problems.append(f"{CONFIG_DOC}:{r.line_no}: --{fl.long}: the table gives the "
                                f"default `{r.default}`, {fl.where} declares none (or one this "
                                "check cannot read)")
        for r in rows:
            if r.flag not in src_flags:
                problems.append(f"{CONFIG_DOC}:{r.line_no}: --{r.flag} is in the table of {what} "
                                "but not in the source")
    for sub in tables:
        if sub not in cli:
            problems.append(f"{CONFIG_DOC}: a flag table for {sub}, which the source lacks")
    return checked


# ------------------------------------------------------------------------------------------------

def run(root):
    problems = []
    anchors = Anchors(root)
    n_links = check_links(root, anchors, problems)
    n_urls = check_runbooks(root, anchors, problems)
    n_flags = check_flags(root, problems)
    return problems, (n_links, n_urls, n_flags)


FIXTURE = {
    "README.md": """# Demo

See [configuration](docs/configuration.md#flags), [the runbook](docs/runbooks.md#linqdown),
[a twin](docs/runbooks.md#same-1), [explicit](docs/runbooks.md#custom-id) and
![an image](docs/pic.png). `[not a link](nowhere.md)`

```
[not a link either](nowhere.md)
```
""",
    "docs/pic.png": "",
    "docs/runbooks.md": """# Runbooks

## LinqDown
## Same
## Same
<a id="custom-id"></a>
## Large accounts: shard by `--linq.from`

Back to [the README](../README.md) and [large](#large-accounts-shard-by---linqfrom).
""",
    "docs/configuration.md": """# Configuration

## Flags

| flag | env | default | meaning |
|---|---|---|---|
| `--linq.poll-interval` | `LINQ_POLL` | `60s` | a | b \\| c |
| `--linq.max-size` | `LINQ_MAX_SIZE` | `16MiB` | bound |
| `--web.max-connections` | `LINQ_MAXCONN` | `4096` | connections |
| `--linq.score` | `LINQ_SCORE` | `50` | float default |
| `--linq.timeout` | `LINQ_TIMEOUT` | poll interval | no declared default |
| `--once` | — | `false` | bool |

## Subcommands

### `linq-exporter healthcheck`

| flag | env | default | meaning |
|---|---|---|---|
| `--url` | `HC_URL` | `http://x/healthz` | url |
""",
    "src/config/cli.rs": """
use clap::{Parser, Subcommand};
const MAX_CONNECTIONS: usize = 4_096;

/// Docs with a { brace and a "quote.
#[derive(Debug, Parser)]
#[command(name = "demo")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Poll interval (e.g. "60s").
    #[arg(long = "linq.poll-interval", env = "LINQ_POLL", default_value = "60s", value_parser = parse)]
    pub poll_interval: Duration,
    #[arg(
        long = "linq.max-size",
        env = "LINQ_MAX_SIZE",
        default_value = "16MiB"
    )]
    pub max_size: Size,
    #[arg(long = "web.max-connections", env = "LINQ_MAXCONN", default_value_t = MAX_CONNECTIONS)]
    pub max_connections: usize,
    #[command(flatten)]
    pub more: More,
    #[arg(long = "once", default_value_t = false)]
    pub once: bool,
    pub positional: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct More {
    #[arg(long = "linq.score", env = "LINQ_SCORE", default_value_t = 50.0)]
    pub score: f64,
    #[arg(long = "linq.timeout", env = "LINQ_TIMEOUT", value_parser = parse)]
    pub timeout: Option<HashMap<String, u8>>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe ('{').
    Healthcheck {
        #[arg(long = "url", env = "HC_URL", default_value = "http://x/healthz")]
        url: String,
    },
    Simulate,
}
""",
    "deploy/prometheus/alerts.yaml": """groups:
  - name: g
    rules:
      - alert: LinqDown
        expr: up == 0
        annotations:
          runbook_url: "https://github.com/linq-exporter/linq-exporter/blob/main/docs/runbooks.md#linqdown"
""",
    "dashboards/provisioning/alerting/a.yaml": """groups:
  - rules:
      - annotations:
          runbook_url: https://github.com/linq-exporter/linq-exporter/blob/main/docs/runbooks.md#same
""",
}


def self_test():
    failures = []

    def expect(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    expect(slug("Large accounts: shard by `--linq.from`") == "large-accounts-shard-by---linqfrom",
           "slug: punctuation and code spans")
    expect(slug("LinqExporterDown") == "linqexporterdown", "slug: an alert heading")
    expect(slug("Chat snapshot (rendered once per completed sweep)")
           == "chat-snapshot-rendered-once-per-completed-sweep", "slug: parentheses")
    expect(slug("TLS and_authentication [link](x.md)") == "tls-and_authentication-link",
           "slug: underscore kept, link text kept")

    def fixture_run(edit=None):
        tmp = tempfile.mkdtemp(prefix="check-docs-")
        try:
            files = dict(FIXTURE)
            if edit:
                edit(files)
            for rel, text in files.items():
                path = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            return run(tmp)
        finally:
            shutil.rmtree(tmp)

    problems, counts = fixture_run()
    expect(not problems, f"clean fixture: no problems (got {problems})")
    expect(counts == (7, 2, 7), f"clean fixture: 7 links, 2 runbook_urls, 7 flags checked "
           f"(got {counts})")

    def case(what, edit, needle):
        problems, _ = fixture_run(edit)
        hit = [p for p in problems if needle in p]
        expect(len(hit) == 1 and len(problems) == 1,
               f"{what}: reported once, alone (got {problems})")

    def sub(rel, old, new):
        def edit(files):
            assert old in files[rel], (rel, old)
            files[rel] = files[rel].replace(old, new)
        return edit

    case("broken anchor", sub("README.md", "#linqdown", "#linq-down"),
         "docs/runbooks.md has no anchor #linq-down")
    case("anchor of a de-duplicated heading", sub("README.md", "#same-1", "#same-2"),
         "no anchor #same-2")
    case("missing file", sub("README.md", "docs/pic.png", "docs/gone.png"),
         "docs/gone.png does not exist")
    case("relative link from docs/", sub("docs/runbooks.md", "](../README.md)", "](README.md)"),
         "docs/README.md does not exist")
    case("runbook_url to a missing anchor",
         sub("deploy/prometheus/alerts.yaml", "#linqdown", "#alert-linqdown"),
         "has no anchor #alert-linqdown")
    case("runbook_url to a missing file",
         sub("dashboards/provisioning/alerting/a.yaml", "docs/runbooks.md", "docs/gone.md"),
         "docs/gone.md does not exist")
    case("drifted env", sub("docs/configuration.md", "`LINQ_MAX_SIZE`", "`LINQ_MAXSIZE`"),
         "--linq.max-size: env is LINQ_MAXSIZE in the table, LINQ_MAX_SIZE in")
    case("drifted default", sub("src/config/cli.rs", 'default_value = "16MiB"',
                                'default_value = "8MiB"'),
         "--linq.max-size: default is `16MiB` in the table, `8MiB` in")
    case("drifted default through a const", sub("src/config/cli.rs", "4_096;", "1024;"),
         "--web.max-connections: default is `4096` in the table, `1024` in")
    case("default documented, none declared",
         sub("src/config/cli.rs", ', default_value_t = 50.0', ''),
         "--linq.score: the table gives the default `50`")
    case("flag missing from the table (flattened struct)",
         sub("docs/configuration.md", "| `--linq.score` | `LINQ_SCORE` | `50` | float default |\n",
             ""),
         "--linq.score (src/config/cli.rs More.score) is not in the table")
    case("flag the source lacks",
         sub("src/config/cli.rs", '#[arg(long = "once", default_value_t = false)]\n', ""),
         "--once is in the table of the top-level flags but not in the source")
    case("subcommand flag drift", sub("src/config/cli.rs", 'env = "HC_URL"', 'env = "HC_URI"'),
         "--url: env is HC_URL in the table, HC_URI in")
    case("subcommand without a table",
         sub("src/config/cli.rs", "    Simulate,\n",
             '    Simulate {\n        #[arg(long = "chats", default_value_t = 3)]\n'
             "        chats: usize,\n    },\n"),
         "no flag table for subcommand simulate")

    print(f"self-test: {'FAILED' if failures else 'ok'} ({len(failures)} failed)")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true",
                        help="run the checks on built-in fixtures with known problems")
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), help="repository root (default: this script's repository)")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    problems, (n_links, n_urls, n_flags) = run(args.root)
    for p in problems:
        print(f"FAIL {p}")
    print(f"docs: {n_links} relative links, {n_urls} runbook_urls, {n_flags} flags checked; "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
