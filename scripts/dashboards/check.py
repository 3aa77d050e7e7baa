#!/usr/bin/env python3
"""Checks for linq-exporter's dashboards, alert rules and recording rules.

Used by scripts/ci-dashboards.sh:
  check.py static                         structure of dashboards, rules, provisioning, docs
  check.py names EXPOSITION...            every metric a query uses is one the exporter exports
  check.py e2e --prometheus URL           every query returns data from a real Prometheus
  check.py native --prometheus URL        the same for the queries over histograms, from a
                                          Prometheus that ingests native histograms

Every check prints "ok - ..." or "FAIL - ..."; with --counts FILE the numbers of passed and failed
checks are appended to FILE as "PASSED FAILED" so the shell script can total them.
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import promql  # noqa: E402

DASHBOARDS = {
    # file -> uid. Uids are how links, provisioning and users' bookmarks find a dashboard: they
    # must never change. This list is the reference; a changed uid fails the check.
    "dashboards/linq-chats.json": "linq-chats",
    "dashboards/linq-exporter.json": "linq-exporter",
}
GRAFANA_ALERTS = "dashboards/provisioning/alerting/linq-alerts.yaml"
GRAFANA_ALERT_UIDS = {
    # alert title -> Grafana rule uid (stable for the same reason as dashboard uids).
    "LinqExporterDown": "linq-exporter-down",
    "LinqExporterAbsent": "linq-exporter-absent",
    "LinqExporterShardMissing": "linq-exporter-shard-missing",
    "LinqExporterSweepsFailing": "linq-exporter-sweeps-failing",
    "LinqExporterDataStale": "linq-exporter-data-stale",
    "LinqApiUnauthorized": "linq-api-unauthorized",
    "LinqApiErrorRateHigh": "linq-api-error-rate-high",
    "LinqChatCritical": "linq-chat-critical",
    "LinqChatHealthScoreLow": "linq-chat-health-score-low",
    "LinqChatsAtRiskHigh": "linq-chats-at-risk-high",
    "LinqLineReputationCritical": "linq-line-reputation-critical",
    "LinqMessageFailuresHigh": "linq-message-failures-high",
    "LinqMessageDeliverySlow": "linq-message-delivery-slow",
    "LinqWebhookSignatureFailures": "linq-webhook-signature-failures",
    "LinqWebhooksSilent": "linq-webhooks-silent",
    "LinqLineFlagged": "linq-line-flagged",
}
ALERTS = "deploy/prometheus/alerts.yaml"
RECORDING_RULES = "deploy/prometheus/recording-rules.yaml"
RULE_TESTS_DIR = "deploy/prometheus/tests"
DOCS = "docs/runbooks.md"  # one "## <AlertName>" section per alert
DS_PROVISIONING = "dashboards/provisioning/datasources/prometheus.yaml"
DASH_PROVISIONING = "dashboards/provisioning/dashboards/linq.yaml"
RUNBOOK_BASE = "https://github.com/linq-exporter/linq-exporter/blob/main/docs/runbooks.md#"
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
REQUIRED_VARIABLES = ("job", "instance", "phone_number", "service")
SEVERITIES = {"critical", "warning", "info"}
# Metrics that come from Prometheus itself rather than from the exporter's exposition.
PROMETHEUS_METRICS = {"up"}

# Values of Grafana's built-in variables for the end-to-end queries. $__rate_interval is what
# Grafana computes for a 15 s scrape interval (4 x 15 s); the test Prometheus scrapes every
# second, so a minute holds plenty of samples.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}


class Results:
    def __init__(self, counts_file=None):
        self.passed = 0
        self.failed = 0
        self.counts_file = counts_file

    def ok(self, msg):
        self.passed += 1
        print(f"ok - {msg}", flush=True)

    def fail(self, msg):
        self.failed += 1
        print(f"FAIL - {msg}", flush=True)

    def check(self, cond, msg, why=""):
        if cond:
            self.ok(msg)
        else:
            self.fail(msg + (f": {why}" if why else ""))
        return cond

    def finish(self):
        if self.counts_file:
            with open(self.counts_file, "a") as f:
                f.write(f"{self.passed} {self.failed}\n")
        return 1 if self.failed else 0


def load_yaml(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return yaml.safe_load(f)


def load_json(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return json.load(f)


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


# ------------------------------------------------------------------------------------------------
# Query inventory: every PromQL expression we ship, with a name for messages.
# ------------------------------------------------------------------------------------------------

class Query:
    def __init__(self, source, expr, kind, dashboard=None, labels=()):
        self.source = source  # human-readable: file, panel/rule, target
        self.expr = expr
        self.kind = kind      # panel | variable | alert | record | grafana-alert
        self.dashboard = dashboard
        # Labels every result series must carry: those the legend, the table columns or the
        # alert's annotations show. A label renamed in the exporter or dropped by a by() clause
        # would leave a legend or a summary blank without emptying the result.
        self.labels = tuple(sorted(set(labels)))


TEMPLATE_LABEL_RE = re.compile(r"\{\{\s*\.?\s*(\w+)\s*\}\}")
ANNOTATION_LABEL_RE = re.compile(r"\$labels\.(\w+)")


def panel_labels(panel, target):
    labels = set(TEMPLATE_LABEL_RE.findall(target.get("legendFormat") or ""))
    if target.get("format") == "table":
        for t in panel.get("transformations", []):
            if t.get("id") == "organize":
                for key in t.get("options", {}).get("renameByName", {}):
                    if key != "Time" and not key.startswith("Value"):
                        labels.add(key)
    return labels


def annotation_labels(rule):
    text = " ".join(str(v) for v in (rule.get("annotations") or {}).values())
    return set(ANNOTATION_LABEL_RE.findall(text))


def dashboard_queries():
    out = []
    for rel in DASHBOARDS:
        dash = load_json(rel)
        name = os.path.basename(rel)
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            out.append(Query(f"{name} variable ${v['name']}", q, "variable", name))
        for p in walk_panels(dash.get("panels", [])):
            for t in p.get("targets", []):
                if "expr" in t:
                    out.append(Query(
                        f"{name} panel {p.get('id')} '{p.get('title')}' target {t.get('refId')}",
                        t["expr"], "panel", name, panel_labels(p, t)))
    return out


def rule_queries():
    out = []
    for group in load_yaml(ALERTS)["groups"]:
        for r in group["rules"]:
            out.append(Query(f"alerts.yaml alert {r['alert']}", r["expr"], "alert",
                             labels=annotation_labels(r)))
    for group in load_yaml(RECORDING_RULES)["groups"]:
        for r in group["rules"]:
            out.append(Query(f"recording-rules.yaml record {r['record']}", r["expr"], "record"))
    for group in load_yaml(GRAFANA_ALERTS)["groups"]:
        for r in group["rules"]:
            for d in r["data"]:
                if d.get("datasourceUid") == "__expr__":
                    continue
                out.append(Query(f"linq-alerts.yaml Grafana rule {r['title']} query {d['refId']}",
                                 d["model"]["expr"], "grafana-alert",
                                 labels=annotation_labels(r)))
    return out


def all_queries():
    return dashboard_queries() + rule_queries()


def recorded_names():
    return {r["record"] for g in load_yaml(RECORDING_RULES)["groups"] for r in g["rules"]}


def names_in(q):
    if q.kind == "variable":
        parsed = promql.label_values_query(q.expr)
        if parsed is None:
            return None
        selector, _label = parsed
        return promql.metric_names(selector) if selector else set()
    return promql.metric_names(q.expr)


# ------------------------------------------------------------------------------------------------
# static
# ------------------------------------------------------------------------------------------------

def find_hardcoded_datasources(node, path="$"):
    """Yield paths of datasource references that are not the ${datasource} variable."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                if isinstance(v, dict):
                    uid = v.get("uid")
                    if uid is not None and uid != "${datasource}":
                        yield f"{path}.datasource (uid {uid!r})"
                elif isinstance(v, str) and v not in ("${datasource}", "$datasource"):
                    yield f"{path}.datasource ({v!r})"
            elif k == "datasourceUid":
                yield f"{path}.datasourceUid"
            yield from find_hardcoded_datasources(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from find_hardcoded_datasources(v, f"{path}[{i}]")


def thresholds_of(panel):
    out = [panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds")]
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in o.get("properties", []):
            if prop.get("id") == "thresholds":
                out.append(prop.get("value"))
    return [t for t in out if t]


def is_score_thresholds(t):
    s = t.get("steps", [])
    return (len(s) == 3 and s[0]["color"] == "red" and s[0]["value"] is None
            and s[1]["value"] == 30 and s[2]["value"] == 60)


def check_dashboard(res, rel, uid):
    name = os.path.basename(rel)
    try:
        dash = load_json(rel)
    except (OSError, ValueError) as e:
        res.fail(f"{name}: parses as JSON: {e}")
        return
    res.ok(f"{name}: parses as JSON")
    res.check(dash.get("uid") == uid, f"{name}: uid is {uid!r}", f"found {dash.get('uid')!r}")
    res.check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 39,
              f"{name}: schemaVersion >= 39", f"found {dash.get('schemaVersion')!r}")
    res.check(dash.get("title") and dash.get("description") and dash.get("tags"),
              f"{name}: has title, description and tags")
    res.check(dash.get("id") is None, f"{name}: id is null (importable anywhere)")

    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    res.check(ds is not None and ds.get("type") == "datasource" and ds.get("query") == "prometheus",
              f"{name}: has a 'datasource' variable of type prometheus")
    for var in REQUIRED_VARIABLES:
        v = variables.get(var)
        res.check(v is not None and v.get("type") == "query" and v.get("multi") is True
                  and v.get("includeAll") is True and v.get("datasource") == DS_REF,
                  f"{name}: variable ${var} is a multi-value query variable with All on "
                  "${datasource}")

    panels = list(walk_panels(dash.get("panels", [])))
    ids = [p.get("id") for p in panels]
    dupes = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    res.check(all(isinstance(i, int) for i in ids) and not dupes,
              f"{name}: {len(ids)} panel ids are unique integers", f"duplicates {dupes}")

    titles = [p.get("title") for p in panels]
    dup_titles = sorted({t for t in titles if titles.count(t) > 1})
    res.check(all(titles) and not dup_titles, f"{name}: panel titles are set and unique",
              f"duplicates {dup_titles}")

    hard = list(find_hardcoded_datasources(dash))
    res.check(not hard, f"{name}: no hard-coded datasource anywhere", "; ".join(hard[:5]))

    used_vars = set()
    for p in panels:
        if p.get("type") == "row":
            continue
        label = f"{name}: panel {p.get('id')} '{p.get('title')}'"
        problems = []
        if p.get("datasource") != DS_REF:
            problems.append(f"datasource is {p.get('datasource')!r}")
        targets = p.get("targets") or []
        if not targets:
            problems.append("no targets")
        for t in targets:
            if t.get("datasource") != DS_REF:
                problems.append(f"target {t.get('refId')} datasource is {t.get('datasource')!r}")
            if not t.get("expr"):
                problems.append(f"target {t.get('refId')} has no expr")
            for m in re.finditer(r"\$\{?(\w+)", t.get("expr", "")):
                used_vars.add(m.group(1))
        if not p.get("description"):
            problems.append("no description")
        if p.get("type") not in ("table",) and "unit" not in p.get("fieldConfig", {}).get(
                "defaults", {}) and p.get("type") != "heatmap":
            problems.append("no unit")
        if "score" in p.get("title", "").lower() and "distribution" not in p.get(
                "title", "").lower() and "Lowest" not in p.get("title", ""):
            if not any(is_score_thresholds(t) for t in thresholds_of(p)):
                problems.append("score panel without red<30 / amber<60 thresholds")
        if p.get("title") in ("Lowest-scoring chats", "CRITICAL and AT_RISK chats", "Per-number summary"):
            if not any(is_score_thresholds(t) for t in thresholds_of(p)):
                problems.append("score column without red<30 / amber<60 thresholds")
        res.check(not problems, f"{label}: uses $datasource, has targets, description, unit",
                  "; ".join(problems))
    for var in REQUIRED_VARIABLES:
        res.check(var in used_vars or any(f"${var}" in str(v.get("query"))
                                          for v in variables.values()),
                  f"{name}: variable ${var} is used by a query")


def normalize_promql(expr):
    expr = re.sub(r"\s+", " ", expr.strip())
    expr = re.sub(r"\(\s+", "(", expr)
    return re.sub(r"\s+\)", ")", expr)


def check_grafana_alerts(res, prom_alerts):
    try:
        doc = load_yaml(GRAFANA_ALERTS)
    except (OSError, yaml.YAMLError) as e:
        res.fail(f"{GRAFANA_ALERTS}: parses: {e}")
        return
    res.check(doc.get("apiVersion") == 1 and doc.get("groups"),
              f"{GRAFANA_ALERTS}: parses, apiVersion 1 with groups")
    ds_uid = None
    try:
        ds_doc = load_yaml(DS_PROVISIONING)
        ds_uid = next(d["uid"] for d in ds_doc["datasources"] if d["type"] == "prometheus")
        res.ok(f"{DS_PROVISIONING}: provisions a Prometheus data source (uid {ds_uid!r})")
    except (OSError, yaml.YAMLError, KeyError, StopIteration) as e:
        res.fail(f"{DS_PROVISIONING}: provisions a Prometheus data source with a uid: {e!r}")
    rules = {r["title"]: r for g in doc.get("groups", []) for r in g.get("rules", [])}
    res.check(set(rules) == set(prom_alerts),
              f"{GRAFANA_ALERTS}: the same alerts as {ALERTS}",
              f"only Grafana: {sorted(set(rules) - set(prom_alerts))}, "
              f"only Prometheus: {sorted(set(prom_alerts) - set(rules))}")
    uids = [r.get("uid") for r in rules.values()]
    res.check(len(uids) == len(set(uids)), f"{GRAFANA_ALERTS}: rule uids are unique")
    for title, r in sorted(rules.items()):
        p = prom_alerts.get(title, {})
        problems = []
        if r.get("uid") != GRAFANA_ALERT_UIDS.get(title):
            problems.append(f"uid {r.get('uid')!r} != stable {GRAFANA_ALERT_UIDS.get(title)!r}")
        if r.get("for") != p.get("for", "0m"):
            problems.append(f"for {r.get('for')!r} != {p.get('for')!r}")
        if r.get("labels") != p.get("labels"):
            problems.append("labels differ from the Prometheus rule")
        if r.get("annotations", {}).get("runbook_url") != p.get("annotations", {}).get(
                "runbook_url"):
            problems.append("runbook_url differs from the Prometheus rule")
        queries = [d["model"].get("expr", "") for d in r.get("data", [])
                   if d.get("datasourceUid") != "__expr__"]
        if [normalize_promql(q) for q in queries] != [normalize_promql(p.get("expr", ""))]:
            problems.append("its query is not the Prometheus rule's expression")
        refs = {d["refId"] for d in r.get("data", [])}
        if r.get("condition") not in refs:
            problems.append(f"condition {r.get('condition')!r} is not a refId")
        for d in r.get("data", []):
            if d.get("datasourceUid") not in ("__expr__", ds_uid):
                problems.append(f"query {d['refId']} uses data source {d.get('datasourceUid')!r}")
        res.check(not problems, f"{GRAFANA_ALERTS}: {title} matches its Prometheus rule",
                  "; ".join(problems))


def check_prometheus_rules(res):
    doc = load_yaml(ALERTS)
    alerts = {}
    docs_text = open(os.path.join(ROOT, DOCS)).read() if os.path.exists(
        os.path.join(ROOT, DOCS)) else ""
    for g in doc["groups"]:
        for r in g["rules"]:
            alerts[r["alert"]] = r
            a = r.get("annotations", {})
            # GitHub's anchor of the heading "## LinqExporterDown" is "linqexporterdown".
            anchor = r["alert"].lower()
            problems = []
            if r.get("labels", {}).get("severity") not in SEVERITIES:
                problems.append(f"severity {r.get('labels', {}).get('severity')!r}")
            for k in ("summary", "description", "runbook_url"):
                if not a.get(k):
                    problems.append(f"no {k}")
            if a.get("runbook_url") != RUNBOOK_BASE + anchor:
                problems.append(f"runbook_url is not {RUNBOOK_BASE + anchor}")
            if not re.search(rf"^## {re.escape(r['alert'])}[ \t]*$", docs_text, re.M):
                problems.append(f"{DOCS} has no heading '## {r['alert']}'")
            # Name what is affected through labels.
            if "$labels." not in a.get("summary", "") + a.get("description", ""):
                problems.append("summary/description name nothing through $labels")
            res.check(not problems, f"{ALERTS}: {r['alert']} has severity, summary, description, "
                      "runbook_url and a runbook section", "; ".join(problems))
    # Unit tests: a must-fire and a must-not-fire case per alert.
    fire, quiet = set(), set()
    tests_dir = os.path.join(ROOT, RULE_TESTS_DIR)
    for fn in sorted(os.listdir(tests_dir)):
        if not fn.endswith((".yaml", ".yml")):
            continue
        t = load_yaml(os.path.join(RULE_TESTS_DIR, fn))
        for case in t.get("tests", []):
            for at in case.get("alert_rule_test", []) or []:
                (fire if at.get("exp_alerts") else quiet).add(at["alertname"])
    for name in sorted(alerts):
        res.check(name in fire and name in quiet,
                  f"{RULE_TESTS_DIR}: {name} has a must-fire and a must-not-fire test",
                  f"fire={name in fire} not-fire={name in quiet}")
    return alerts


def check_provisioning(res):
    try:
        doc = load_yaml(DASH_PROVISIONING)
        prov = doc["providers"][0]
        res.check(doc.get("apiVersion") == 1 and prov.get("type") == "file"
                  and prov.get("options", {}).get("path"),
                  f"{DASH_PROVISIONING}: a file dashboard provider with a path")
    except (OSError, yaml.YAMLError, KeyError, IndexError) as e:
        res.fail(f"{DASH_PROVISIONING}: a file dashboard provider: {e!r}")


def cmd_static(args):
    res = Results(args.counts)
    import generate  # noqa: E402  (same directory)
    stale = [rel for rel, content in generate.render_outputs().items()
             if not os.path.exists(os.path.join(ROOT, rel))
             or open(os.path.join(ROOT, rel), encoding="utf-8").read() != content]
    res.check(not stale, "generated files are up to date with scripts/dashboards/generate.py",
              "re-run it; stale: " + ", ".join(stale))
    for rel, uid in DASHBOARDS.items():
        check_dashboard(res, rel, uid)
    prom_alerts = check_prometheus_rules(res)
    check_grafana_alerts(res, prom_alerts)
    check_provisioning(res)
    # Every expression is at least lexically sane for the later steps.
    for q in all_queries():
        if q.kind == "variable":
            res.check(promql.label_values_query(q.expr) is not None,
                      f"{q.source}: is a label_values() query", q.expr)
    return res.finish()


# ------------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------------

def exposition_names(path):
    names = set()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) >= 4:
                    name, typ = parts[2], parts[3]
                    names.add(name)
                    if typ in ("histogram", "summary"):
                        names.update({name + "_sum", name + "_count"})
                        if typ == "histogram":
                            names.add(name + "_bucket")
            elif line and not line.startswith("#"):
                m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
                if m:
                    names.add(m.group(0))
    return names


def cmd_names(args):
    res = Results(args.counts)
    exported = set()
    for path in args.exposition:
        exported |= exposition_names(path)
    res.check(bool(exported), f"exported metric names read from {', '.join(args.exposition)}",
              "none found")
    allowed = exported | PROMETHEUS_METRICS | recorded_names()
    used_anywhere = set()
    for q in all_queries():
        names = names_in(q)
        if names is None:
            res.fail(f"{q.source}: cannot read metric names from {q.expr!r}")
            continue
        used_anywhere |= names
        unknown = sorted(names - allowed)
        res.check(not unknown, f"{q.source}: uses only exported metrics",
                  f"not exported: {', '.join(unknown)}")
    unused = sorted(n for n in exported if n.startswith("linq_") and n not in used_anywhere
                    and n + "_bucket" not in exported
                    and not re.search(r"_(bucket|sum|count)$", n))
    if unused:
        print(f"# note: exported but in no dashboard or rule: {', '.join(unused)}")
    return res.finish()


# ------------------------------------------------------------------------------------------------
# e2e
# ------------------------------------------------------------------------------------------------

class Prom:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, params):
        url = f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "errorType": f"http {e.code}", "error": str(e)}
        except (urllib.error.URLError, OSError, ValueError) as e:
            return {"status": "error", "errorType": "connection", "error": str(e)}

    def query(self, expr):
        return self.get("/api/v1/query", {"query": expr})

    def label_values(self, label, selector):
        params = {"match[]": [selector]} if selector else {}
        return self.get(f"/api/v1/label/{urllib.parse.quote(label)}/values", params)


def regex_escape_for_grafana(value):
    """What Grafana's Prometheus data source does to a multi-value variable's value."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value)


def format_var(values):
    if values == "__all":
        return ".*"  # the variables' allValue
    escaped = [regex_escape_for_grafana(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr, var_values):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in var_values:
            return format_var(var_values[name])
        raise KeyError(name)

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


def describe_result(data, labels=()):
    """(non_empty, text) for a Prometheus query result whose series must carry labels."""
    rtype, result = data.get("resultType"), data.get("result")
    if rtype == "scalar":
        return True, f"scalar {result[1]}"
    if rtype in ("vector", "matrix"):
        if not result:
            return False, "empty result"
        missing = sorted({lb for s in result for lb in labels if lb not in s.get("metric", {})})
        if missing:
            return False, (f"{len(result)} series, but without the label(s) "
                           f"{', '.join(missing)} that the legend/columns/annotations show")
        values = [s["value"][1] for s in result] if rtype == "vector" else [
            v[1] for s in result for v in s["values"]]
        if all(v.lower() == "nan" for v in values):
            return False, f"{len(result)} series, all NaN"
        return True, f"{len(result)} series"
    return False, f"unexpected result type {rtype}"


class Case:
    """One query to run: how to run it, and a note on any transformation applied."""

    def __init__(self, name, run):
        self.name = name
        self.run = run      # () -> (passed, permanent_error, message)
        self.last = None


def expr_case(prom, name, expr, fallbacks=(), labels=()):
    """Run expr; if it is empty, try the fallbacks (expr, note) in order."""

    def run():
        r = prom.query(expr)
        if r.get("status") != "success":
            permanent = r.get("errorType") == "bad_data"
            return False, permanent, f"error {r.get('errorType')}: {r.get('error')} in {expr!r}"
        ok, text = describe_result(r["data"], labels)
        if ok:
            return True, False, text
        first = text
        for fb_expr, note in fallbacks:
            r = prom.query(fb_expr)
            if r.get("status") != "success":
                return False, r.get("errorType") == "bad_data", \
                    f"error {r.get('errorType')}: {r.get('error')} in {fb_expr!r}"
            ok, text = describe_result(r["data"], labels)
            if ok:
                return True, False, f"{text} ({note})"
        return False, False, f"{first} for {expr!r}"

    return Case(name, run)


def label_values_case(prom, name, query, var_values):
    def run():
        try:
            selector, label = promql.label_values_query(substitute(query, var_values))
        except KeyError as e:
            return False, True, f"unknown template variable {e}"
        r = prom.label_values(label, selector)
        if r.get("status") != "success":
            return False, r.get("errorType") == "bad_data", \
                f"error {r.get('errorType')}: {r.get('error')}"
        if not r.get("data"):
            return False, False, f"no values for label {label} of {selector}"
        return True, False, f"{len(r['data'])} values"

    return Case(name, run)


def absent_case(prom, name, expr, inner, labels=()):
    """absent(X): X must have data, and absent(X) must therefore be empty."""

    def run():
        r = prom.query(inner)
        if r.get("status") != "success":
            return False, r.get("errorType") == "bad_data", \
                f"error {r.get('errorType')}: {r.get('error')} in {inner!r}"
        ok, text = describe_result(r["data"], labels)
        if not ok:
            return False, False, f"{text} for {inner!r}"
        r = prom.query(expr)
        if r.get("status") != "success":
            return False, r.get("errorType") == "bad_data", \
                f"error {r.get('errorType')}: {r.get('error')} in {expr!r}"
        if r["data"].get("result"):
            return False, False, f"{expr!r} reports its target missing"
        return True, False, (f"{text} for the selector inside absent(), and absent() is empty "
                             "as it must be while the exporter is scraped")

    return Case(name, run)


def rule_case(prom, name, expr, labels=()):
    """A case for an alert expression.

    An alert expression is empty while its alert is not firing, and the demo is healthy enough
    that most thresholds are not crossed. The test must still prove the expression selects real
    data, so (and the output says so):
      - absent(X) is empty while X exists: X must have data and absent(X) must be empty;
      - "<query> <op> <number>" that is empty: <query> without the final comparison must have data;
      - "<query> <op> <query>" that is empty: "(<query>) <op> bool (<query>)" must have data.
    """
    inner = promql.unwrap_absent(expr)
    if inner is not None:
        return absent_case(prom, name, expr, inner, labels)
    return expr_case(prom, name, expr, rule_fallbacks(expr), labels)


def rule_fallbacks(expr):
    split = promql.split_final_comparison(expr)
    if split is not None:
        lhs, op, number = split
        out = [(lhs, f"threshold not crossed in the demo: evaluated without '{op} {number}'")]
        # "(A unless on (...) B) > 0" is empty while B matches all of A (every shard reports):
        # A and B must each have data.
        parts = promql.split_unless(lhs)
        if parts is not None:
            out.append((f"({parts[0]}) and on () count({parts[1]})",
                        "empty while nothing is missing: evaluated as the left side of 'unless', "
                        "kept only if its right side has data too"))
        return out
    split = promql.split_final_comparison(expr, vector_rhs=True)
    if split is not None:
        # "<query> > <query>": with bool, every pair of series the two sides match returns 0 or
        # 1, which proves both sides select data and match each other.
        lhs, op, rhs = split
        return [(f"({lhs}) {op} bool ({rhs})",
                 f"threshold not crossed in the demo: evaluated as '(...) {op} bool (...)'")]
    return []


def resolve_first_values(prom, queries):
    """Pick the first value of each dashboard variable in order (like a user clicking one)."""
    chosen = {}
    for q in queries:
        if q.kind != "variable":
            continue
        var = q.source.rsplit("$", 1)[1]
        if var in chosen:
            continue
        try:
            selector, label = promql.label_values_query(substitute(q.expr, chosen))
        except (KeyError, TypeError):
            continue
        r = prom.label_values(label, selector)
        values = sorted(r.get("data") or []) if r.get("status") == "success" else []
        if values:
            chosen[var] = [values[0]]
    return chosen


def cmd_e2e(args):
    res = Results(args.counts)
    prom = Prom(args.prometheus)
    deadline = time.monotonic() + args.timeout

    queries = all_queries()
    all_vars = {v: "__all" for v in REQUIRED_VARIABLES}
    cases = []
    for q in queries:
        if q.kind == "variable":
            cases.append(label_values_case(prom, f"{q.source} (All)", q.expr, all_vars))
        elif q.kind == "panel":
            try:
                expr = substitute(q.expr, all_vars)
            except KeyError as e:
                res.fail(f"{q.source}: unknown template variable {e}")
                continue
            cases.append(expr_case(prom, f"{q.source} (All)", expr, labels=q.labels))
        elif q.kind in ("alert", "grafana-alert"):
            cases.append(rule_case(prom, q.source, q.expr, q.labels))
        else:
            cases.append(expr_case(prom, q.source, q.expr))

    def run_round(pending):
        still = []
        for c in pending:
            passed, permanent, msg = c.run()
            c.last = (passed, permanent, msg)
            if not passed and not permanent:
                still.append(c)
        return still

    # Wait (bounded) until Prometheus scrapes the exporter, then poll the queries.
    up_expr = 'up{job="linq-exporter"} == 1'
    while time.monotonic() < deadline:
        r = prom.query(up_expr)
        if r.get("status") == "success" and r["data"].get("result"):
            break
        time.sleep(1)
    res.check(prom.query(up_expr).get("data", {}).get("result"),
              "Prometheus scrapes the exporter (up == 1)")

    # Bounded polling: re-run what is still empty until everything has data or time is up.
    print(f"# e2e: {len(cases)} queries against {args.prometheus}, up to {args.timeout}s",
          flush=True)
    pending = run_round(cases)
    rounds = 1
    while pending and time.monotonic() < deadline:
        time.sleep(args.interval)
        pending = run_round(pending)
        rounds += 1
    print(f"# e2e: {rounds} round(s), {len(pending)} still empty", flush=True)

    # Second pass over the dashboards with one concrete value per variable, as a user would pick:
    # proves the variables chain and the regex escaping of values such as +15551234567.
    chosen = resolve_first_values(prom, queries)
    res.check(set(chosen) == set(REQUIRED_VARIABLES),
              f"dashboard variables resolve to values: {json.dumps(chosen)}")
    concrete = []
    for q in queries:
        if q.kind == "variable":
            concrete.append(label_values_case(prom, f"{q.source} ({json.dumps(chosen)})",
                                              q.expr, chosen))
        elif q.kind == "panel":
            try:
                expr = substitute(q.expr, chosen)
            except KeyError:
                continue  # reported above
            concrete.append(expr_case(prom, f"{q.source} (one value each)", expr,
                                      labels=q.labels))
    pending2 = run_round(concrete)
    while pending2 and time.monotonic() < deadline + 30:
        time.sleep(args.interval)
        pending2 = run_round(pending2)

    for c in cases + concrete:
        passed, _permanent, msg = c.last
        res.check(passed, f"{c.name}: {msg}" if passed else c.name, msg)

    # Prometheus loaded and evaluates every rule without error.
    r = prom.get("/api/v1/rules", {})
    groups = r.get("data", {}).get("groups", []) if r.get("status") == "success" else []
    n_rules = sum(len(g.get("rules", [])) for g in groups)
    expected = sum(len(g["rules"]) for g in load_yaml(ALERTS)["groups"]) + sum(
        len(g["rules"]) for g in load_yaml(RECORDING_RULES)["groups"])
    res.check(n_rules == expected, f"Prometheus loaded all {expected} rules", f"found {n_rules}")
    for g in groups:
        for rule in g.get("rules", []):
            res.check(rule.get("health") != "err",
                      f"Prometheus evaluates {rule.get('name')} without error",
                      rule.get("lastError", ""))
    return res.finish()


# Histograms the exporter also exposes as native histograms (protobuf, issue 18). A Prometheus that
# ingests them natively stores no _bucket/_sum/_count series for them, only the native series.
NATIVE_FAMILIES = ("linq_message_delivery_seconds", "linq_message_read_seconds",
                   "linq_webhook_delivery_lag_seconds")
# Classic histograms whose le values a protobuf scrape spells "10.0" (as Prometheus 3 always does).
LE_SPELLING_FAMILIES = ("linq_chats_by_health_score",)


def native_mode_expectation(q):
    """None if q reads no native-capable histogram; else "data" or "empty" (reads only the classic
    _bucket/_sum/_count series of one, so it must be empty and its panel must say so)."""
    names = names_in(q) or set()
    fams = [f for f in NATIVE_FAMILIES if names & {f, f + "_bucket", f + "_sum", f + "_count"}]
    if not fams:
        return "data" if any(n.startswith(LE_SPELLING_FAMILIES) for n in names) else None
    return "data" if any(f in names for f in fams) else "empty"


def cmd_native(args):
    """Against a Prometheus that scrapes the exporter with native histograms enabled (protobuf):
    the native-capable histograms are stored as native histograms (no _bucket series), every query
    and alert that reads them still returns data, a panel that can only read classic buckets is
    empty and says so in its description, and the health-score panels cope with le="10.0"."""
    res = Results(args.counts)
    prom = Prom(args.prometheus)
    deadline = time.monotonic() + args.timeout

    up_expr = 'up{job="linq-exporter"} == 1'
    while time.monotonic() < deadline:
        r = prom.query(up_expr)
        if r.get("status") == "success" and r["data"].get("result"):
            break
        time.sleep(1)
    res.check(prom.query(up_expr).get("data", {}).get("result"),
              "native-histogram Prometheus scrapes the exporter (up == 1)")

    def stored(expr):
        r = prom.query(expr)
        return r.get("status") == "success" and bool(r["data"].get("result"))

    for fam in NATIVE_FAMILIES:
        sel = f'{{__name__="{fam}", job="linq-exporter"}}'
        classic = f'{fam}_bucket{{job="linq-exporter"}}'
        while time.monotonic() < deadline and not stored(sel):
            time.sleep(args.interval)
        has_native, has_classic = stored(sel), stored(classic)
        res.check(has_native and not has_classic,
                  f"{fam} is stored as a native histogram (native series, no _bucket series)",
                  f"native series: {has_native}, _bucket series: {has_classic}")

    panels = {}
    for rel in DASHBOARDS:
        for p in walk_panels(load_json(rel).get("panels", [])):
            panels[f"{os.path.basename(rel)} panel {p.get('id')} "] = p
    all_vars = {v: "__all" for v in REQUIRED_VARIABLES}
    cases = []
    for q in all_queries():
        want = native_mode_expectation(q) if q.kind != "variable" else None
        if want is None:
            continue
        if want == "empty":
            panel = next((p for k, p in panels.items() if q.source.startswith(k)), None)
            res.check(q.kind == "panel" and panel is not None
                      and "native" in (panel.get("description") or ""),
                      f"{q.source}: reads only classic buckets; its panel says what to do with "
                      "native histograms")
            continue
        expr = substitute(q.expr, all_vars) if q.kind == "panel" else q.expr
        if q.kind == "panel":
            cases.append(expr_case(prom, f"{q.source} (native, All)", expr, labels=q.labels))
        elif q.kind in ("alert", "grafana-alert"):
            cases.append(rule_case(prom, f"{q.source} (native)", q.expr, q.labels))
        else:
            cases.append(expr_case(prom, f"{q.source} (native)", expr))
    print(f"# native: {len(cases)} queries against {args.prometheus}, up to {args.timeout}s",
          flush=True)
    pending = list(cases)
    while True:
        still = []
        for c in pending:
            c.last = c.run()
            if not c.last[0] and not c.last[1]:
                still.append(c)
        pending = still
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(args.interval)
    for c in cases:
        passed, _permanent, msg = c.last
        res.check(passed, f"{c.name}: {msg}" if passed else c.name, msg)
    return res.finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", help="append 'PASSED FAILED' to this file")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("static")
    n = sub.add_parser("names")
    n.add_argument("exposition", nargs="+")
    e = sub.add_parser("e2e")
    e.add_argument("--prometheus", required=True)
    e.add_argument("--timeout", type=float, default=240)
    e.add_argument("--interval", type=float, default=3)
    nat = sub.add_parser("native")
    nat.add_argument("--prometheus", required=True)
    nat.add_argument("--timeout", type=float, default=120)
    nat.add_argument("--interval", type=float, default=3)
    args = ap.parse_args()
    return {"static": cmd_static, "names": cmd_names, "e2e": cmd_e2e,
            "native": cmd_native}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
