"""Small, dependency-free PromQL helpers for the dashboard checks.

Not a PromQL parser: just enough lexical analysis (strings, comments, brackets) to
 - split an alert expression into "<query> <comparison> <number>" at the top level,
 - unwrap absent(...),
 - list the metric names an expression selects.
The end-to-end test runs every expression through a real Prometheus, which is the real parser.
"""

import re

COMPARISON_OPS = ("==", "!=", ">=", "<=", ">", "<")

# Words that can appear bare in PromQL without being metric names.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "atan2", "inf", "nan", "start", "end",
}

IDENT_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
NUMBER_RE = re.compile(
    r"^[+-]?(?:inf|nan|0x[0-9a-f]+|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$", re.IGNORECASE
)


def blank_strings_and_comments(expr):
    """Return expr with string literal contents and comments replaced by spaces.

    Positions are preserved, so indices into the result are indices into expr.
    """
    out = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            quote = c
            out.append(c)
            i += 1
            while i < n and expr[i] != quote:
                if expr[i] == "\\" and quote != "`" and i + 1 < n:
                    out.append("  ")
                    i += 2
                    continue
                out.append(" " if expr[i] != "\n" else "\n")
                i += 1
            if i < n:
                out.append(quote)
                i += 1
            continue
        if c == "#":
            while i < n and expr[i] != "\n":
                out.append(" ")
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _depths(blanked):
    """Bracket depth before each character ((), {}, [])."""
    depth = 0
    depths = []
    for c in blanked:
        if c in ")}]":
            depth -= 1
        depths.append(depth)
        if c in "({[":
            depth += 1
    return depths


def strip_outer_parens(expr):
    """Remove parentheses that enclose the whole expression."""
    e = expr.strip()
    while e.startswith("(") and e.endswith(")"):
        blanked = blank_strings_and_comments(e)
        depth = 0
        closes_at_end = True
        for i, c in enumerate(blanked):
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0 and i != len(blanked) - 1:
                    closes_at_end = False
                    break
        if not closes_at_end:
            break
        e = e[1:-1].strip()
    return e


def split_final_comparison(expr, vector_rhs=False):
    """Split "<query> <op> [bool] <number>" at its last top-level comparison.

    Returns (query, op, number_text) or None when the expression does not end in a
    comparison against a number literal. With vector_rhs, the right-hand side may be any
    expression ("<query> > 3 * <other query>"), returned as its text.
    """
    blanked = blank_strings_and_comments(expr)
    depths = _depths(blanked)
    i = len(blanked) - 1
    last = None
    while i >= 0:
        if depths[i] == 0:
            two = blanked[i - 1:i + 1] if i >= 1 else ""
            if two in ("==", "!=", ">=", "<="):
                last = (i - 1, two)
                break
            if blanked[i] in "<>" and not (i >= 1 and blanked[i - 1] in "=!<>"):
                last = (i, blanked[i])
                break
        i -= 1
    if last is None:
        return None
    pos, op = last
    rhs = expr[pos + len(op):].strip()
    rhs_wo_bool = re.sub(r"^bool\s+", "", rhs)
    if not rhs_wo_bool or (not vector_rhs and not NUMBER_RE.match(rhs_wo_bool)):
        return None
    lhs = expr[:pos].strip()
    if not lhs:
        return None
    return strip_outer_parens(lhs), op, rhs_wo_bool


def split_unless(expr):
    """Split "<query> unless [on (...)] <query>" at its first top-level `unless`.

    Returns (left, right) with the matching clause dropped, or None without a top-level unless.
    """
    e = strip_outer_parens(expr)
    blanked = blank_strings_and_comments(e)
    depths = _depths(blanked)
    for m in re.finditer(r"\bunless\b", blanked):
        if depths[m.start()] != 0:
            continue
        left = e[:m.start()].strip()
        right = re.sub(r"^(on|ignoring)\s*\([^)]*\)\s*", "", e[m.end():].strip())
        if left and right:
            return left, right
    return None


def unwrap_absent(expr):
    """For absent(X) / absent_over_time(X), return X; else None."""
    e = strip_outer_parens(expr)
    m = re.match(r"^(absent|absent_over_time)\s*\(", e)
    if not m:
        return None
    inner = e[m.end():]
    if not inner.endswith(")"):
        return None
    candidate = "(" + inner
    if strip_outer_parens(candidate) == candidate.strip():
        return None  # the opening paren closes before the end: absent(x) op y
    return inner[:-1].strip()


def metric_names(expr):
    """Metric names selected by expr (identifiers that are not functions, keywords or labels)."""
    blanked = blank_strings_and_comments(expr)
    # Drop label matchers and range/subquery/offset durations.
    blanked = re.sub(r"\{[^{}]*\}", " ", blanked)
    blanked = re.sub(r"\[[^\[\]]*\]", " ", blanked)
    # Drop grouping / matching label lists: by (a, b), on(a), group_left (x) ...
    blanked = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", blanked
    )
    # Drop durations after offset / @ modifiers.
    blanked = re.sub(r"\boffset\s+-?[0-9a-zA-Z]+", " ", blanked)
    names = set()
    for m in IDENT_RE.finditer(blanked):
        word = m.group(0)
        start, end = m.span()
        # Part of a number like 1e3 or a duration like 5m.
        if start > 0 and (blanked[start - 1].isdigit() or blanked[start - 1] == "."):
            continue
        rest = blanked[end:].lstrip()
        if rest.startswith("("):
            continue  # a function call
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def label_values_query(query):
    """Parse a Grafana label_values(...) variable query.

    Returns (selector_or_None, label) or None when query is not label_values.
    """
    m = re.match(r"^\s*label_values\s*\((.*)\)\s*$", query, re.S)
    if not m:
        return None
    args = m.group(1)
    blanked = blank_strings_and_comments(args)
    depths = _depths(blanked)
    split_at = None
    for i, c in enumerate(blanked):
        if c == "," and depths[i] == 0:
            split_at = i
    if split_at is None:
        return None, args.strip()
    return args[:split_at].strip(), args[split_at + 1:].strip()
