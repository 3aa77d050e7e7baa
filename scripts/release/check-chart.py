#!/usr/bin/env python3
"""Lints and renders the Helm chart (charts/linq-exporter) with the Helm engine (helm-python-sdk,
Helm v4's Go SDK; no helm binary), then checks what it renders:

  - `helm lint --strict`: no findings at all (not even info);
  - the defaults and each toggle (serviceMonitor, prometheusRule, dashboards, webhook,
    networkPolicy, all of them, a chart-made API key Secret) render; the built-in objects pass
    kubernetes-validate --strict (K8S_VERSIONS), the operator objects the vendored CRD schemas;
  - parity with the kustomize manifests (`kubectl kustomize deploy/kubernetes/standalone` and the
    standalone-webhook example): pod and container securityContext, probes, args, env, ports,
    resources and the Secret mounts;
  - the sharded mode (sharding.enabled): lint --strict and kubernetes-validate --strict; a
    StatefulSet and no Deployment; LINQ_EXPORTER_SHARD from the pod-index label (downward API),
    LINQ_EXPORTER_TOTAL_SHARDS equal to the replicas, numbers to split; a headless governing
    Service; the ServiceMonitor scrapes every pod through the metrics Service only; the same
    parity with the kustomize examples sharded-statefulset(-webhook), plus replicas and the
    StatefulSet's update settings;
  - the API key and the webhook secret reach the pod only as mounted files, never as an env value;
  - the PrometheusRule carries exactly the groups of deploy/prometheus/*.yaml, the dashboard
    ConfigMaps exactly dashboards/*.json, labelled for the Grafana sidecar;
  - values.schema.json rejects wrong types and unknown keys; missing secrets fail with a message;
  - the chart's copies of the rules and dashboards are up to date.

    scripts/release/check-chart.py
"""

import copy
import json
import os
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy"))
from checks import Checker  # noqa: E402  scripts/deploy/checks.py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "linq-exporter")
K8S_VERSIONS = os.environ.get("K8S_VERSIONS", "1.35.0 1.36.0 1.37.0").split()
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
POD_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"
# The kustomize sharded examples (from the sharding branch: deploy/kubernetes/sharded/ and these).
KUST_SHARDED = "deploy/kubernetes/examples/sharded-statefulset"
KUST_SHARDED_WEBHOOK = "deploy/kubernetes/examples/sharded-statefulset-webhook"
KEY = "lk_test_DO_NOT_LEAK_0123456789"
SIGNING = "whsec_dGVzdHNpZ25pbmdzZWNyZXQ="

TOGGLES = {
    "defaults": {},
    "serviceMonitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
    "prometheusRule": {"prometheusRule": {"enabled": True}},
    "dashboards": {"dashboards": {"enabled": True}},
    "webhook": {"webhook": {"enabled": True}},
    "networkPolicy": {"networkPolicy": {"enabled": True}},
    "apiKey.value": {"apiKey": {"value": KEY}, "webhook": {"enabled": True, "signingSecret": SIGNING}},
    "everything": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                   "dashboards": {"enabled": True}, "webhook": {"enabled": True},
                   "networkPolicy": {"enabled": True}, "apiKey": {"value": KEY},
                   "fromNumbers": ["+12025550101"], "extraArgs": ["--linq.chat-metrics=aggregate"]},
    "sharding": {"sharding": {"enabled": True}},
    "sharding+webhook": {"sharding": {"enabled": True}, "webhook": {"enabled": True},
                         "serviceMonitor": {"enabled": True}, "networkPolicy": {"enabled": True}},
    "sharding+fromNumbers": {"sharding": {"enabled": True, "shards": 5}, "apiKey": {"value": KEY},
                             "fromNumbers": ["+12025550101", "+12025550102"]},
}
SHARDED_EVERYTHING = {**TOGGLES["everything"], "sharding": {"enabled": True, "shards": 4}}
TOGGLES["sharding+everything"] = SHARDED_EVERYTHING


def render(chart, values, name="linq-exporter", namespace="monitoring"):
    out = chart.render(values, name=name, namespace=namespace)
    objs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objs.append(doc)
    return out, objs


def kustomize(directory):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, directory)],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    return found[0] if len(found) == 1 else None


def exporter(objs):
    """The exporter's workload (the Deployment, or sharded the StatefulSet), its pod and container."""
    dep = one(objs, "Deployment") or one(objs, "StatefulSet")
    pod = dep["spec"]["template"]["spec"]
    return dep, pod, next(c for c in pod["containers"] if c["name"] == "linq-exporter")


def parity(ck, label, chart_objs, kust_objs, kind="Deployment"):
    _, hpod, hc = exporter(chart_objs)
    kdep = next(o for o in kust_objs if o["kind"] == kind)
    kpod = kdep["spec"]["template"]["spec"]
    kc = next(c for c in kpod["containers"] if c["name"] == "linq-exporter")
    def norm(v):  # lists of named objects (ports, mounts) compare in any order
        if isinstance(v, list) and all(isinstance(x, dict) and "name" in x for x in v):
            return sorted(v, key=lambda x: x["name"])
        return v
    for field in ("securityContext", "startupProbe", "livenessProbe", "readinessProbe", "resources",
                  "ports", "volumeMounts"):
        ck.check(f"{label}: container {field} equals kustomize's", norm(hc.get(field)) == norm(kc.get(field)),
                 f"chart {json.dumps(hc.get(field))} != kustomize {json.dumps(kc.get(field))}")
    ck.check(f"{label}: args equal kustomize's", hc.get("args") == kc.get("args"),
             f"{hc.get('args')} != {kc.get('args')}")
    henv = {e["name"]: e.get("value", e.get("valueFrom")) for e in hc.get("env", [])}
    kenv = {e["name"]: e.get("value", e.get("valueFrom")) for e in kc.get("env", [])}
    ck.check(f"{label}: env equals kustomize's", henv == kenv, f"{henv} != {kenv}")
    for field in ("securityContext", "automountServiceAccountToken", "enableServiceLinks"):
        ck.check(f"{label}: pod {field} equals kustomize's", hpod.get(field) == kpod.get(field),
                 f"{hpod.get(field)} != {kpod.get(field)}")
    hvol = {v["name"]: {k: v["secret"][k] for k in ("defaultMode", "items")} for v in hpod["volumes"]}
    kvol = {v["name"]: {k: v["secret"][k] for k in ("defaultMode", "items")} for v in kpod["volumes"]}
    ck.check(f"{label}: Secret volumes (mode, items) equal kustomize's", hvol == kvol, f"{hvol} != {kvol}")
    if kind == "Deployment":
        ck.check(f"{label}: one replica, Recreate, as kustomize",
                 chart_objs[0] is not None and one(chart_objs, "Deployment")["spec"]["replicas"] == kdep["spec"]["replicas"] == 1
                 and one(chart_objs, "Deployment")["spec"]["strategy"]["type"] == kdep["spec"]["strategy"]["type"])
        return
    hsts = one(chart_objs, "StatefulSet")
    for field in ("replicas", "podManagementPolicy", "updateStrategy", "revisionHistoryLimit"):
        ck.check(f"{label}: StatefulSet {field} equals kustomize's",
                 hsts is not None and hsts["spec"].get(field) == kdep["spec"].get(field),
                 f"{hsts and hsts['spec'].get(field)} != {kdep['spec'].get(field)}")


def sharded(ck, label, objs, shards, from_numbers=None):
    """The sharded mode's objects: what makes each pod a distinct shard of the same total, and each
    pod a scrape target of its own."""
    kinds = sorted(o["kind"] for o in objs)
    sts = one(objs, "StatefulSet")
    ck.check(f"{label}: a StatefulSet and no Deployment ({', '.join(kinds)})",
             sts is not None and "Deployment" not in kinds)
    if sts is None:
        return
    spec = sts["spec"]
    ck.check(f"{label}: replicas = sharding.shards ({shards})", spec.get("replicas") == shards,
             str(spec.get("replicas")))
    c = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == "linq-exporter")
    env = {e["name"]: e for e in c.get("env", [])}
    shard = env.get("LINQ_EXPORTER_SHARD", {})
    ck.check(f"{label}: LINQ_EXPORTER_SHARD is the fieldRef {POD_INDEX_FIELD}, nothing else",
             shard.get("valueFrom") == {"fieldRef": {"fieldPath": POD_INDEX_FIELD}} and "value" not in shard,
             json.dumps(shard))
    total = env.get("LINQ_EXPORTER_TOTAL_SHARDS", {}).get("value")
    ck.check(f"{label}: LINQ_EXPORTER_TOTAL_SHARDS equals the replicas ({spec.get('replicas')})",
             total == str(spec.get("replicas")), f"{total!r}")
    discover = env.get("LINQ_EXPORTER_DISCOVER_NUMBERS", {}).get("value")
    if from_numbers:
        ck.check(f"{label}: every pod gets the whole fromNumbers list, no discovery",
                 env.get("LINQ_EXPORTER_FROM", {}).get("value") == ",".join(from_numbers) and discover is None,
                 json.dumps([env.get("LINQ_EXPORTER_FROM"), discover]))
    else:
        ck.check(f"{label}: numbers to split: LINQ_EXPORTER_DISCOVER_NUMBERS=true",
                 discover == "true" and "LINQ_EXPORTER_FROM" not in env, json.dumps(discover))
    ck.check(f"{label}: podManagementPolicy Parallel (shards start and restart together)",
             spec.get("podManagementPolicy") == "Parallel")
    pod_labels = spec["template"]["metadata"]["labels"]
    def selects(selector):
        return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())
    ck.check(f"{label}: the StatefulSet's selector matches its pod labels", selects(spec["selector"]["matchLabels"]))
    services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    gov = services.get(spec.get("serviceName"))
    ck.check(f"{label}: serviceName {spec.get('serviceName')} is a headless Service of the release selecting the pods",
             gov is not None and gov["spec"].get("clusterIP") == "None" and selects(gov["spec"].get("selector")),
             json.dumps(gov and gov["spec"]))
    metrics = [s for s in services.values() if s["metadata"]["labels"].get("app.kubernetes.io/component") == "metrics"]
    ck.check(f"{label}: one metrics Service, selecting every shard's pod, with port metrics",
             len(metrics) == 1 and selects(metrics[0]["spec"].get("selector"))
             and any(p["name"] == "metrics" and p["targetPort"] == "metrics" for p in metrics[0]["spec"]["ports"]),
             json.dumps([s["metadata"]["name"] for s in metrics]))
    sm = one(objs, "ServiceMonitor")
    if sm is not None:
        sel = sm["spec"]["selector"]["matchLabels"]
        hit = [n for n, s in services.items() if all(s["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        ck.check(f"{label}: the ServiceMonitor selects the metrics Service only (each pod one target, "
                 f"job linq-exporter)", hit == [m["metadata"]["name"] for m in metrics]
                 and sm["spec"]["endpoints"][0]["port"] == "metrics"
                 and {"action": "replace", "targetLabel": "job", "replacement": "linq-exporter"}
                 in sm["spec"]["endpoints"][0].get("relabelings", []), str(hit))


def validate(ck, label, objs):
    import jsonschema
    import kubernetes_validate
    for version in K8S_VERSIONS:
        problems = []
        for o in objs:
            if (o["apiVersion"], o["kind"]) in CRD_SCHEMAS:
                continue
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{o['kind']}/{o['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(str(e))
        n = len([o for o in objs if (o["apiVersion"], o["kind"]) not in CRD_SCHEMAS])
        ck.problems(f"{label}: kubernetes-validate --strict, Kubernetes {version} ({n} objects)", problems)
    for o in objs:
        schema_file = CRD_SCHEMAS.get((o["apiVersion"], o["kind"]))
        if schema_file:
            with open(os.path.join(ROOT, "deploy", "kubernetes", "schemas", schema_file), encoding="utf-8") as f:
                schema = json.load(f)
            errors = list(jsonschema.Draft202012Validator(schema).iter_errors(o))
            ck.problems(f"{label}: {o['kind']} matches schemas/{schema_file}",
                        [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5]])


def no_secret_in_env(ck, label, out, objs):
    _, _, c = exporter(objs)
    env = c.get("env", [])
    # The one valueFrom allowed: the shard, from the pod-index label (downward API, no Secret).
    shard_ref = {"fieldRef": {"fieldPath": POD_INDEX_FIELD}}
    bad = [e["name"] for e in env
           if ("valueFrom" in e and not (e["name"] == "LINQ_EXPORTER_SHARD" and e["valueFrom"] == shard_ref))
           or KEY in str(e.get("value")) or SIGNING in str(e.get("value"))]
    ck.check(f"{label}: no secret in env (values or valueFrom)", not bad, str(bad))
    files = {e["name"]: e["value"] for e in env if e["name"].endswith("_FILE")}
    ck.check(f"{label}: the API key is a mounted file",
             files.get("LINQ_API_V3_API_KEY_FILE") == "/var/run/secrets/linq/api-key"
             and not any(e["name"] == "LINQ_API_V3_API_KEY" for e in env))
    rendered = "".join(v for k, v in out.items() if not k.endswith("secret.yaml"))
    ck.check(f"{label}: the key's value appears in no template but the Secret",
             KEY not in rendered and SIGNING not in rendered)


def main():
    import helm_python.chart as hc
    import helm_python.errors as herr

    ck = Checker()
    for script in (["scripts/deploy/gen-prometheusrule.py", "--check"], ["scripts/release/chart-files.py", "--check"]):
        r = subprocess.run([sys.executable, *script], cwd=ROOT, capture_output=True, text=True)
        ck.check(f"chart copies up to date: {' '.join(script)}", r.returncode == 0, r.stdout[-2000:] + r.stderr[-500:])

    lint = hc.lint(CHART, strict=True)
    ck.check("helm lint --strict: no messages, no errors",
             not lint.get("messages") and not lint.get("errors") and lint.get("total_charts_linted") == 1,
             json.dumps(lint))
    for kv in K8S_VERSIONS:
        lint = hc.lint(CHART, TOGGLES["everything"], strict=True, kube_version=f"v{kv}")
        ck.check(f"helm lint --strict with every toggle on, Kubernetes {kv}",
                 not lint.get("messages") and not lint.get("errors"), json.dumps(lint))
        lint = hc.lint(CHART, SHARDED_EVERYTHING, strict=True, kube_version=f"v{kv}")
        ck.check(f"helm lint --strict sharded with every toggle on, Kubernetes {kv}",
                 not lint.get("messages") and not lint.get("errors"), json.dumps(lint))

    chart = hc.Chart.load(CHART)
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        import tomllib
        version = tomllib.load(f)["package"]["version"]
    meta = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml"), encoding="utf-8"))
    ck.check(f"Chart.yaml version and appVersion are Cargo.toml's ({version})",
             meta.get("version") == version and str(meta.get("appVersion")) == version,
             f"{meta.get('version')}/{meta.get('appVersion')}")

    kust = kustomize("deploy/kubernetes/standalone")
    kust_webhook = kustomize("deploy/kubernetes/examples/standalone-webhook")
    kust_sharded, kust_sharded_webhook = None, None
    try:
        kust_sharded = kustomize(KUST_SHARDED)
        kust_sharded_webhook = kustomize(KUST_SHARDED_WEBHOOK)
    except subprocess.CalledProcessError as e:
        ck.check(f"kubectl kustomize {KUST_SHARDED}(-webhook)", False, e.stderr[-500:])
    rendered = {}
    for label, values in TOGGLES.items():
        try:
            out, objs = render(chart, copy.deepcopy(values))
        except Exception as e:  # noqa: BLE001  any render failure is a finding
            ck.check(f"{label}: renders", False, str(e)[:500])
            continue
        rendered[label] = (out, objs)
        ck.check(f"{label}: renders ({', '.join(sorted(o['kind'] for o in objs))})", True)
        validate(ck, label, objs)
        no_secret_in_env(ck, label, out, objs)
        dep, pod, c = exporter(objs)
        want_image = f"ghcr.io/linq-exporter/linq-exporter:{version}"
        ck.check(f"{label}: image {want_image}", c["image"] == want_image, c["image"])
        ck.check(f"{label}: NOTES.txt renders", "linq-exporter" in out.get("linq-exporter/templates/NOTES.txt", ""))

    if "defaults" in rendered:
        out, objs = rendered["defaults"]
        ck.check("defaults: only the Deployment and the Service",
                 sorted(o["kind"] for o in objs) == ["Deployment", "Service"])
        parity(ck, "defaults vs deploy/kubernetes/standalone", objs, kust)
        _, pod, _ = exporter(objs)
        ck.check("defaults: mounts the existing Secret linq-api-key (the kustomize name)",
                 pod["volumes"][0]["secret"]["secretName"] == "linq-api-key")
    for label, shards, from_numbers in (("sharding", 3, None), ("sharding+webhook", 3, None),
                                        ("sharding+fromNumbers", 5, TOGGLES["sharding+fromNumbers"]["fromNumbers"]),
                                        ("sharding+everything", 4, SHARDED_EVERYTHING["fromNumbers"])):
        if label in rendered:
            sharded(ck, label, rendered[label][1], shards, from_numbers)
    if "sharding" in rendered and kust_sharded:
        parity(ck, f"sharding vs {KUST_SHARDED}", rendered["sharding"][1], kust_sharded, "StatefulSet")
    if "sharding+webhook" in rendered and kust_sharded_webhook:
        # Parity of the exporter only: the chart's NetworkPolicy and ServiceMonitor are its own.
        parity(ck, f"sharding+webhook vs {KUST_SHARDED_WEBHOOK}", rendered["sharding+webhook"][1],
               kust_sharded_webhook, "StatefulSet")
    if "webhook" in rendered:
        _, objs = rendered["webhook"]
        parity(ck, "webhook vs examples/standalone-webhook", objs, kust_webhook)
        svc = one(objs, "Service")
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        ck.check("webhook: the Service has a named port webhook (10044) and metrics",
                 ports.get("webhook", {}).get("port") == 10044 and "metrics" in ports, str(ports))
    if "apiKey.value" in rendered:
        _, objs = rendered["apiKey.value"]
        secrets = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Secret"}
        _, pod, _ = exporter(objs)
        names = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
        import base64
        ok = (names.get("linq-api-key") in secrets
              and base64.b64decode(secrets[names["linq-api-key"]]["data"]["api-key"]).decode() == KEY
              and names.get("linq-webhook-secret") in secrets
              and base64.b64decode(secrets[names["linq-webhook-secret"]]["data"]["signing-secret"]).decode() == SIGNING)
        ck.check("apiKey.value: the chart's Secrets hold the key and signing secret, and the pod mounts them", ok,
                 f"volumes {names}, secrets {sorted(secrets)}")
    if "prometheusRule" in rendered:
        _, objs = rendered["prometheusRule"]
        rule = one(objs, "PrometheusRule")
        want = []
        for src in ("deploy/prometheus/alerts.yaml", "deploy/prometheus/recording-rules.yaml"):
            with open(os.path.join(ROOT, src), encoding="utf-8") as f:
                want += yaml.safe_load(f)["groups"]
        ck.check(f"prometheusRule: the groups of deploy/prometheus/*.yaml, unchanged ({len(want)} groups, "
                 f"{sum(len(g['rules']) for g in want)} rules)", rule and rule["spec"]["groups"] == want)
        text = yaml.safe_dump(rule)
        ck.check("prometheusRule: alert templates ({{ $labels }}) reach Prometheus unrendered",
                 "{{ $labels" in text or "{{$labels" in text)
    if "dashboards" in rendered:
        _, objs = rendered["dashboards"]
        cms = [o for o in objs if o["kind"] == "ConfigMap"]
        want = {}
        for n in sorted(os.listdir(os.path.join(ROOT, "dashboards"))):
            if n.endswith(".json"):
                with open(os.path.join(ROOT, "dashboards", n), encoding="utf-8") as f:
                    want[n] = json.load(f)
        have = {}
        for cm in cms:
            for k, v in cm["data"].items():
                have[k] = json.loads(v)
        ck.check(f"dashboards: one ConfigMap per dashboards/*.json, same JSON ({', '.join(want)})",
                 have == want and len(cms) == len(want))
        ck.check("dashboards: labelled grafana_dashboard=\"1\" for the Grafana sidecar",
                 all(cm["metadata"]["labels"].get("grafana_dashboard") == "1" for cm in cms))
    if "networkPolicy" in rendered and "everything" in rendered:
        np1 = one(rendered["networkPolicy"][1], "NetworkPolicy")
        npa = one(rendered["everything"][1], "NetworkPolicy")
        ports1 = [p["port"] for r in np1["spec"]["ingress"] for p in r["ports"]]
        portsa = [p["port"] for r in npa["spec"]["ingress"] for p in r["ports"]]
        ck.check("networkPolicy: admits metrics (and webhook only with the receiver on)",
                 ports1 == ["metrics"] and portsa == ["metrics", "webhook"], f"{ports1} {portsa}")

    # The schema rejects wrong types and unknown keys; missing secrets fail with a message.
    for label, values in {
        "service.port as a string": {"service": {"port": "http"}},
        "serviceMonitor.enabled as a string": {"serviceMonitor": {"enabled": "yes"}},
        "webhook.port out of range": {"webhook": {"port": 70000}},
        "an unknown key": {"replicas": 2},
        "sharding.enabled as a string": {"sharding": {"enabled": "yes"}},
        "sharding.shards as a string": {"sharding": {"enabled": True, "shards": "3"}},
        "sharding.shards as a fraction": {"sharding": {"enabled": True, "shards": 2.5}},
        "sharding.shards of 1": {"sharding": {"enabled": True, "shards": 1}},
        "an unknown key under sharding": {"sharding": {"enabled": True, "replicas": 3}},
        "an API key in extraEnv": {"extraEnv": [{"name": "LINQ_API_V3_API_KEY", "value": "x"}]},
    }.items():
        try:
            chart.render(values, name="linq-exporter", namespace="monitoring")
            ck.check(f"values.schema.json rejects {label}", False, "rendered")
        except herr.HelmError as e:
            ck.check(f"values.schema.json rejects {label}", "schema" in str(e).lower() or "values" in str(e).lower(), str(e)[:300])
    for label, values, needle in [
        ("no API key Secret", {"apiKey": {"existingSecret": ""}}, "apiKey.existingSecret"),
        ("webhook without a signing secret", {"webhook": {"enabled": True, "existingSecret": ""}}, "webhook.existingSecret"),
    ]:
        try:
            chart.render(values, name="linq-exporter", namespace="monitoring")
            ck.check(f"fails with a message: {label}", False, "rendered")
        except herr.HelmError as e:
            ck.check(f"fails with a message: {label}", needle in str(e), str(e)[:300])
    return ck.finish("chart")


if __name__ == "__main__":
    sys.exit(main())
