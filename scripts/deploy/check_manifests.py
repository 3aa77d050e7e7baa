#!/usr/bin/env python3
"""Static checks of the container image definition and the Kubernetes manifests.

Run by scripts/ci-deploy.sh (which installs kubectl, kubernetes-validate and PyYAML first):

    python3 scripts/deploy/check_manifests.py [--counts FILE]

Renders every kustomization under deploy/kubernetes with `kubectl kustomize` and checks:
  - built-in objects pass kubernetes-validate --strict for each Kubernetes version in K8S_VERSIONS;
  - Prometheus Operator objects pass the vendored schemas in deploy/kubernetes/schemas/;
  - every exporter container: image and tag, security settings, probes (paths that the exporter
    serves, per src/), resources, the `metrics` port, env names that exist in the clap
    definitions in src/, the key read from a Secret file;
  - the wiring between objects: Service -> pods, ServiceMonitor -> Service, PodMonitor -> pods,
    NetworkPolicy -> pods and who it admits, the job label the alerts select on;
  - the Dockerfile and .dockerignore against Cargo.toml, src/ and the manifests;
  - the webhook receiver (../webhook component): its port apart from the metrics port, its path,
    its signing secret from a read-only Secret file, a Service with only the webhook port, a
    NetworkPolicy admitting only that port and only from the ingress namespace, Ingresses that
    route only the webhook path (Exact) to it over TLS;
  - the Secret examples and the env names / flags quoted in README.md.
Prints one line per check and `manifests: N passed, M failed`; exit status 1 on any failure.
"""

import argparse
import fnmatch
import glob
import json
import os
import re
import subprocess
import sys
import tomllib

import jsonschema
import yaml

from checks import Checker  # scripts/deploy/checks.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
K8S_VERSIONS = os.environ.get("K8S_VERSIONS", "1.35.0 1.36.0 1.37.0").split()
IMAGE_REPO = "ghcr.io/linq-exporter/linq-exporter"
MONITORING_NAMESPACE = "monitoring"
# The namespace the webhook receiver's NetworkPolicy admits (ingress-nginx's default).
INGRESS_NAMESPACE = "ingress-nginx"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}


def rel(path):
    return os.path.relpath(path, ROOT)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Facts from the sources: Cargo.toml, the clap definitions in src/, the HTTP routes, the Dockerfile, the alerts.

def cargo_facts():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        pkg = tomllib.load(f)["package"]
    return pkg


def cli_sources():
    """The text of every src/**/*.rs file that uses clap (the CLI module may move)."""
    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True)):
        text = read(path)
        if re.search(r"\bclap\b", text):
            texts.append(text)
    return "\n".join(texts)


def cli_facts():
    """Env names, long flags and defaults declared with clap in src/ (the files that use clap)."""
    src = cli_sources()
    envs = set(re.findall(r'\benv\s*=\s*"([A-Z0-9_]+)"', src))
    # Variables read beside clap, declared as constants (the SDK's LINQ_WEBHOOK_SECRET).
    envs |= set(re.findall(r'\bconst\s+[A-Z0-9_]+_ENV\s*:\s*&str\s*=\s*"(LINQ_[A-Z0-9_]+)"', src))
    flags = set(re.findall(r'\blong\s*=\s*"([a-z0-9.\-]+)"', src))
    defaults = {}
    # #[arg(long = "web.listen-address", env = "...", default_value = "0.0.0.0:10042")]
    for attr in re.findall(r"#\[arg\((.*?)\)\]", src, re.S):
        long = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
        default = re.search(r'\bdefault_value\s*=\s*"([^"]*)"', attr)
        if long and default:
            defaults[long.group(1)] = default.group(1)
    subcommands = set(s.lower() for s in re.findall(r"^\s*([A-Z][A-Za-z]+)\s*\{", src, re.M))
    return {"envs": envs, "flags": flags, "defaults": defaults, "subcommands": subcommands}


def served_paths():
    """String literals that look like HTTP routes in src/ (the exporter's endpoints)."""
    paths = set()
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True):
        paths.update(re.findall(r'"(/(?:healthz|readyz|metrics))"', read(path)))
    return paths


def dockerfile_facts():
    text = read(os.path.join(ROOT, "Dockerfile"))
    logical = re.sub(r"\\\n", " ", text)  # join continuation lines
    lines = [l.strip() for l in logical.splitlines() if l.strip() and not l.strip().startswith("#")]
    facts = {"from": [], "run": [], "args": {}, "labels": {}, "user": None, "expose": [],
             "entrypoint": None, "healthcheck": None}
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        rest = rest.strip()
        if word == "FROM":
            facts["from"].append(rest)
        elif word == "RUN":
            facts["run"].append(rest)
        elif word == "ARG":
            name, _, value = rest.partition("=")
            facts["args"].setdefault(name, value)
        elif word == "LABEL":
            for k, v in re.findall(r'([\w.\-]+)="([^"]*)"', rest):
                facts["labels"][k] = v
        elif word == "USER":
            facts["user"] = rest
        elif word == "EXPOSE":
            facts["expose"].extend(rest.split())
        elif word == "ENTRYPOINT":
            facts["entrypoint"] = rest
        elif word == "HEALTHCHECK":
            facts["healthcheck"] = rest
    return facts


def alert_jobs():
    """job="..." values the alerts select on (they must be what the scrape config produces)."""
    text = read(os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml"))
    return set(re.findall(r'\bjob\s*=\s*"([^"]+)"', text))


# ---------------------------------------------------------------------------------------------
# Rendering

def kustomizations():
    """Every directory under deploy/kubernetes with a kustomization that is not a Component."""
    dirs = []
    for path in sorted(glob.glob(os.path.join(KDIR, "**", "kustomization.yaml"), recursive=True)):
        doc = yaml.safe_load(read(path)) or {}
        if doc.get("kind", "Kustomization") == "Kustomization":
            dirs.append(os.path.dirname(path))
    return dirs


def render(directory):
    out = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    return [d for d in yaml.safe_load_all(out.stdout) if d], ""


# ---------------------------------------------------------------------------------------------
# Helpers over objects

def selector_matches(selector, labels):
    if not selector:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def workloads(objs):
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def exporter_containers(pod_spec):
    return [c for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", [])
            if IMAGE_REPO in c.get("image", "") or c.get("name") == "linq-exporter"]


def listen_port(value):
    """Port of a --web.listen-address value (host:port or :port)."""
    m = re.search(r":(\d+)$", value or "")
    return int(m.group(1)) if m else None


def port_covers(rule_port, number, name):
    """Whether a NetworkPolicy port entry admits TCP `number` (or the named port `name`)."""
    if rule_port.get("protocol", "TCP") != "TCP":
        return False
    p = rule_port.get("port")
    if p is None:
        return True  # no port: all ports
    if isinstance(p, str):
        return p == name
    end = rule_port.get("endPort", p)
    return p <= number <= end


# ---------------------------------------------------------------------------------------------
# Checks

def secret_file_problems(pod, container, env, uid, value_var, file_var):
    """Problems with a secret given as file_var: a file in a read-only Secret volume, mounted as a
    directory (never subPath: rotation), readable by uid; and never value_var with a literal."""
    spec = pod["spec"]
    sc = container.get("securityContext") or {}
    values = {e["name"]: e.get("value") for e in env}
    problems = []
    if [e for e in env if e["name"] == value_var and "value" in e]:
        problems.append(f"{value_var} has a literal value")
    path = values.get(file_var)
    if not path:
        problems.append(f"{file_var} is not set")
        return problems
    mounts = [m for m in container.get("volumeMounts") or []
              if path.startswith(m["mountPath"].rstrip("/") + "/")]
    if not mounts:
        problems.append(f"{path} is in no volume mount")
    for m in mounts:
        vol = next((v for v in spec.get("volumes") or [] if v["name"] == m["name"]), {})
        if "secret" not in vol and "projected" not in vol:
            problems.append(f"volume {m['name']} is not a Secret")
        if not m.get("readOnly"):
            problems.append(f"mount {m['name']} is not readOnly")
        if m.get("subPath"):
            problems.append(f"mount {m['name']} uses subPath (never updated on rotation)")
        items = (vol.get("secret") or {}).get("items")
        if items is not None:
            rel_file = path[len(m["mountPath"].rstrip("/")) + 1:]
            if rel_file not in [i["path"] for i in items]:
                problems.append(f"{rel_file} is not among the Secret items")
        mode = (vol.get("secret") or {}).get("defaultMode")
        if mode is not None and mode & 0o002:
            problems.append(f"defaultMode {oct(mode)} is world-writable")
        if mode is not None and not (mode & 0o004) and not (
                mode & 0o040 and (spec.get("securityContext") or {}).get("fsGroup")
                in (uid, sc.get("runAsGroup"))):
            problems.append(f"defaultMode {oct(mode)}: uid {uid} cannot read {path} "
                            f"(needs group read + fsGroup, or other read)")
    return problems


def check_exporter_container(ck, where, pod, container, ctx):
    name = f"{where}: container {container['name']}"
    spec = pod["spec"]
    pod_sc = spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    version = ctx["cargo"]["version"]
    uid = ctx["docker_uid"]
    metrics_port = listen_port(ctx["cli"]["defaults"].get("web.listen-address"))
    telemetry = ctx["cli"]["defaults"].get("web.telemetry-path", "/metrics")

    ck.check(f"{name}: image is {IMAGE_REPO}:{version} (Cargo.toml version)",
             container.get("image") == f"{IMAGE_REPO}:{version}", f"image is {container.get('image')}")

    problems = []
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        problems.append("runAsNonRoot is not true")
    run_as = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if run_as != uid:
        problems.append(f"runAsUser {run_as} is not the image's USER {uid}")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("privileged") is True:
        problems.append("privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append("capabilities.drop lacks ALL")
    if caps.get("add"):
        problems.append(f"capabilities.add {caps['add']}")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        problems.append(f"seccompProfile is {seccomp}, not RuntimeDefault")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append("uses a host namespace")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken is not false (the exporter needs no API token)")
    ck.problems(f"{name}: security context (non-root {uid}, read-only root, no escalation, "
                f"drop ALL, seccomp RuntimeDefault)", problems)

    # Ports
    ports = container.get("ports") or []
    named = [p for p in ports if p.get("name") == "metrics"]
    ck.check(f"{name}: port `metrics` is containerPort {metrics_port}/TCP "
             f"(the --web.listen-address default)",
             len(named) == 1 and named[0].get("containerPort") == metrics_port
             and named[0].get("protocol", "TCP") == "TCP", f"ports are {ports}")

    # Env
    env = container.get("env") or []
    names = [e["name"] for e in env]
    unknown = [n for n in names if n.startswith("LINQ_") and n not in ctx["cli"]["envs"]]
    ck.check(f"{name}: env names exist in src/ ({', '.join(names)})", not unknown,
             f"unknown: {unknown}")
    values = {e["name"]: e.get("value") for e in env}
    if "LINQ_EXPORTER_LISTEN_ADDRESS" in values:
        ck.check(f"{name}: LINQ_EXPORTER_LISTEN_ADDRESS port is the metrics port",
                 listen_port(values["LINQ_EXPORTER_LISTEN_ADDRESS"]) == metrics_port,
                 f"{values['LINQ_EXPORTER_LISTEN_ADDRESS']}")
    if "LINQ_EXPORTER_TELEMETRY_PATH" in values:
        telemetry = values["LINQ_EXPORTER_TELEMETRY_PATH"]
    ctx["telemetry_paths"].add(telemetry)

    # The key: from a file in a read-only Secret volume, mounted as a directory (rotation).
    key_file = values.get("LINQ_API_V3_API_KEY_FILE")
    ck.problems(f"{name}: API key from a read-only Secret file ({key_file})",
                secret_file_problems(pod, container, env, uid, "LINQ_API_V3_API_KEY",
                                     "LINQ_API_V3_API_KEY_FILE"))

    # The webhook receiver (../webhook component): its own port, its path, its secret from a file.
    webhook = None
    hooks = [p for p in ports if p.get("name") == "webhook"]
    address = values.get("LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS")
    if address or hooks:
        port = listen_port(address)
        ck.check(f"{name}: port `webhook` is containerPort {port}/TCP "
                 "(LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS), apart from the metrics port",
                 port is not None and port != metrics_port and len(hooks) == 1
                 and hooks[0].get("containerPort") == port
                 and hooks[0].get("protocol", "TCP") == "TCP",
                 f"LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS={address}, ports are {ports}")
        path = values.get("LINQ_EXPORTER_WEBHOOK_PATH",
                          ctx["cli"]["defaults"].get("webhook.path", "/webhook"))
        ck.check(f"{name}: webhook path {path} is a path of its own (not {telemetry}, a probe "
                 "path or /)",
                 bool(re.fullmatch(r"/[A-Za-z0-9._~\-/]+", path or ""))
                 and path not in ({telemetry, "/healthz", "/readyz"} | ctx["served"]),
                 f"{path}")
        secret_file = values.get("LINQ_WEBHOOK_SIGNING_SECRET_FILE")
        ck.problems(f"{name}: webhook signing secret from a read-only Secret file ({secret_file})",
                    secret_file_problems(pod, container, env, uid, "LINQ_WEBHOOK_SIGNING_SECRET",
                                         "LINQ_WEBHOOK_SIGNING_SECRET_FILE"))
        webhook = {"port": port, "path": path}

    # Probes: startup + liveness on /healthz, readiness on /readyz (standalone) or /healthz
    # (sidecar: a sidecar's readiness is the pod's, see deploy/kubernetes/base/deployment.yaml).
    served = ctx["served"]
    sidecar = len(spec.get("containers", [])) > 1
    want = {"startupProbe": "/healthz", "livenessProbe": "/healthz",
            "readinessProbe": "/healthz" if sidecar else "/readyz"}
    problems = []
    for probe, path in want.items():
        p = container.get(probe)
        if not p:
            problems.append(f"no {probe}")
            continue
        get = p.get("httpGet") or {}
        if get.get("path") != path:
            problems.append(f"{probe} path {get.get('path')} (want {path})")
        if get.get("path") not in served:
            problems.append(f"{probe} path {get.get('path')} is not served by src/ ({sorted(served)})")
        if get.get("port") not in ("metrics", metrics_port):
            problems.append(f"{probe} port {get.get('port')}")
    live, start = container.get("livenessProbe") or {}, container.get("startupProbe") or {}
    if start and start.get("periodSeconds", 10) * start.get("failureThreshold", 3) < 30:
        problems.append("startupProbe allows less than 30s to start")
    if live and live.get("timeoutSeconds", 1) < 2:
        problems.append("livenessProbe timeout under 2s")
    ck.problems(f"{name}: probes startup+liveness /healthz, readiness "
                f"{want['readinessProbe']} ({'sidecar' if sidecar else 'standalone'})", problems)

    # Resources
    res = container.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    problems = []
    for k in ("cpu", "memory"):
        if k not in req:
            problems.append(f"no requests.{k}")
    if "memory" not in lim:
        problems.append("no limits.memory")
    if "memory" in req and "memory" in lim and mebibytes(req["memory"]) > mebibytes(lim["memory"]):
        problems.append("memory request above limit")
    if "memory" in req and mebibytes(req["memory"]) < 48:
        problems.append(f"memory request {req['memory']} is under the ~40 MiB measured at 3,000 chats")
    ck.problems(f"{name}: resources requests cpu/memory, limits memory "
                f"({req.get('memory')}/{lim.get('memory')})", problems)
    return webhook


POD_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"


def check_replicas(ck, wname, w, containers):
    """One replica, unless the workload is sharded: a StatefulSet whose pods read their shard
    from the pod-index label and whose LINQ_EXPORTER_TOTAL_SHARDS equals its replicas, with a
    list of numbers to split (discovery or LINQ_EXPORTER_FROM)."""
    replicas = w["spec"].get("replicas")
    envs = [{e["name"]: e for e in c.get("env") or []} for c in containers]
    sharded = [e for e in envs if "LINQ_EXPORTER_SHARD" in e or "LINQ_EXPORTER_TOTAL_SHARDS" in e]
    if not sharded:
        ck.check(f"{wname}: 1 replica (each replica sweeps the whole account)",
                 replicas == 1, f"replicas {replicas}")
        return
    problems = []
    if w["kind"] != "StatefulSet":
        problems.append(f"a {w['kind']} has no pod index: every replica would be the same shard")
    for env in sharded:
        shard = env.get("LINQ_EXPORTER_SHARD") or {}
        field = ((shard.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if field != POD_INDEX_FIELD:
            problems.append(f"LINQ_EXPORTER_SHARD is not the downward API's {POD_INDEX_FIELD} "
                            f"({shard})")
        total = (env.get("LINQ_EXPORTER_TOTAL_SHARDS") or {}).get("value")
        if total != str(replicas):
            problems.append(f"LINQ_EXPORTER_TOTAL_SHARDS is {total!r}, replicas {replicas}")
        discover = (env.get("LINQ_EXPORTER_DISCOVER_NUMBERS") or {}).get("value")
        if str(discover).lower() != "true" and not (env.get("LINQ_EXPORTER_FROM") or {}).get("value"):
            problems.append("neither LINQ_EXPORTER_DISCOVER_NUMBERS=true nor LINQ_EXPORTER_FROM: "
                            "the exporter refuses to start (nothing to split)")
    ck.problems(f"{wname}: sharded: {replicas} replicas, shard from the pod index, "
                f"LINQ_EXPORTER_TOTAL_SHARDS = replicas, numbers to split", problems)


def mebibytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|K|M|G)?", str(q))
    if not m:
        return float("nan")
    n, unit = int(m.group(1)), m.group(2) or ""
    return n * {"": 1 / 2**20, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024,
                "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[unit]


def check_render(ck, where, objs, ctx):
    kinds = [o["kind"] for o in objs]
    ck.check(f"{where}: renders no Secret (apply -k must never overwrite the real key)",
             "Secret" not in kinds)

    # kubernetes-validate, strictly, for each Kubernetes version; CRDs through the vendored schemas.
    import kubernetes_validate
    for version in K8S_VERSIONS:
        problems = []
        for o in objs:
            if (o["apiVersion"], o["kind"]) in CRD_SCHEMAS:
                continue
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.append(f"{o['kind']}/{o['metadata']['name']}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(e.message)
        ck.problems(f"{where}: kubernetes-validate --strict, Kubernetes {version} "
                    f"({len([o for o in objs if (o['apiVersion'], o['kind']) not in CRD_SCHEMAS])} objects)",
                    problems)
    for o in objs:
        schema_file = CRD_SCHEMAS.get((o["apiVersion"], o["kind"]))
        if not schema_file:
            continue
        with open(os.path.join(KDIR, "schemas", schema_file), encoding="utf-8") as f:
            schema = json.load(f)
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(o), key=lambda e: list(e.path))
        ck.problems(f"{where}: {o['kind']}/{o['metadata']['name']} matches schemas/{schema_file}",
                    [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5]])

    # Exporter containers
    pods = []  # (workload, pod template, exporter containers)
    receivers = []  # (pod template, {"port", "path"}) of the containers running the webhook receiver
    for w in workloads(objs):
        tpl = w["spec"]["template"]
        containers = exporter_containers(tpl["spec"])
        if not containers:
            continue
        pods.append((w, tpl, containers))
        wname = f"{where}: {w['kind']}/{w['metadata']['name']}"
        check_replicas(ck, wname, w, containers)
        ck.check(f"{wname}: selector matches its pod template",
                 selector_matches(w["spec"]["selector"], tpl["metadata"].get("labels") or {}))
        ann = tpl["metadata"].get("annotations") or {}
        metrics_port = listen_port(ctx["cli"]["defaults"].get("web.listen-address"))
        ck.check(f"{wname}: prometheus.io/scrape, /port, /path annotations on the pod",
                 ann.get("prometheus.io/scrape") == "true"
                 and ann.get("prometheus.io/port") == str(metrics_port)
                 and ann.get("prometheus.io/path") == ctx["cli"]["defaults"].get("web.telemetry-path"),
                 f"annotations {ann}")
        for c in containers:
            hook = check_exporter_container(ck, wname, tpl, c, ctx)
            if hook:
                receivers.append((tpl, hook))
    ck.check(f"{where}: has at least one exporter container", bool(pods))

    # Services with a metrics port select exporter pods, and the port is wired to `metrics`.
    services = [o for o in objs if o["kind"] == "Service"]
    hook_ports = {hook["port"] for _, hook in receivers}
    for s in services:
        sname = f"{where}: Service/{s['metadata']['name']}"
        sel = {"matchLabels": s["spec"].get("selector") or {}}
        if any(p.get("name") == "webhook" for p in s["spec"].get("ports", [])):
            # The receiver's Service (../webhook): the webhook port, never the metrics port.
            sports = s["spec"].get("ports", [])
            ck.check(f"{sname}: port `webhook` -> targetPort webhook, and no other port (never "
                     "the metrics port)",
                     len(sports) == 1 and sports[0].get("targetPort") in (["webhook"] + sorted(hook_ports))
                     and sports[0].get("protocol", "TCP") == "TCP", f"{sports}")
            ck.check(f"{sname}: selects the pods that run the webhook receiver",
                     any(selector_matches(sel, tpl["metadata"].get("labels") or {})
                         for tpl, _ in receivers))
            ck.check(f"{sname}: selected by no ServiceMonitor (it has no metrics port)",
                     not any(selector_matches(m["spec"].get("selector"), s["metadata"].get("labels") or {})
                             for m in objs if m["kind"] == "ServiceMonitor"))
            continue
        ports = [p for p in s["spec"].get("ports", []) if p.get("name") == "metrics"]
        ck.check(f"{sname}: port `metrics` 10042 -> targetPort metrics",
                 len(ports) == 1 and ports[0].get("port") == 10042
                 and ports[0].get("targetPort") in ("metrics", 10042), f"{s['spec'].get('ports')}")
        ck.check(f"{sname}: selects the exporter pods",
                 any(selector_matches({"matchLabels": s["spec"].get("selector") or {}},
                                      tpl["metadata"].get("labels") or {}) for _, tpl, _ in pods))
        ck.check(f"{sname}: no prometheus.io annotations (the pods carry them; both would scrape twice)",
                 not any(k.startswith("prometheus.io/") for k in (s["metadata"].get("annotations") or {})))

    jobs = ctx["alert_jobs"]
    monitors = [o for o in objs if o["kind"] in ("ServiceMonitor", "PodMonitor")]
    for m in monitors:
        mname = f"{where}: {m['kind']}/{m['metadata']['name']}"
        eps = m["spec"].get("endpoints") or m["spec"].get("podMetricsEndpoints") or []
        if m["kind"] == "ServiceMonitor":
            targets = [s for s in services if selector_matches(m["spec"]["selector"], s["metadata"].get("labels") or {})]
            ok = bool(targets) and all(any(p.get("name") == e.get("port") for s in targets
                                           for p in s["spec"].get("ports", [])) for e in eps)
            ck.check(f"{mname}: selects a Service with the endpoint's port", ok)
        else:
            targets = [tpl for _, tpl, _ in pods if selector_matches(m["spec"]["selector"], tpl["metadata"].get("labels") or {})]
            ok = bool(targets) and all(any(p.get("name") == e.get("port") for tpl in targets
                                           for c in exporter_containers(tpl["spec"]) for p in c.get("ports") or [])
                                       for e in eps)
            ck.check(f"{mname}: selects the exporter pods and their `metrics` port", ok)
        ck.check(f"{mname}: scrapes the telemetry path {sorted(ctx['telemetry_paths'])}",
                 all(e.get("path") in ctx["telemetry_paths"] for e in eps))
        relabeled = set()
        for e in eps:
            for r in e.get("relabelings") or []:
                if r.get("targetLabel") == "job" and r.get("action", "replace").lower() == "replace" \
                        and not r.get("sourceLabels"):
                    relabeled.add(r.get("replacement"))
        ck.check(f"{mname}: sets job={sorted(jobs)} that deploy/prometheus/alerts.yaml selects on",
                 bool(jobs) and relabeled == jobs, f"relabels job to {sorted(relabeled)}")
    ck.check(f"{where}: at most one of ServiceMonitor / PodMonitor (else every target is scraped twice)",
             len({m["kind"] for m in monitors}) <= 1)

    # NetworkPolicy: covers every exporter pod; the metrics port only from the monitoring namespace.
    # A policy that admits the webhook port and not the metrics port is the receiver's (../webhook):
    # it covers the receiver's pods and admits that port only, from the ingress namespace only.
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    for np in policies:
        nname = f"{where}: NetworkPolicy/{np['metadata']['name']}"
        spec = np["spec"]
        rule_ports = [p for rule in spec.get("ingress") or [] for p in (rule.get("ports") or [{}])]
        if receivers and not any(port_covers(p, 10042, "metrics") for p in rule_ports) and any(
                port_covers(p, n, "webhook") for p in rule_ports for n in hook_ports):
            ck.check(f"{nname}: selects every pod that runs the webhook receiver",
                     all(selector_matches(spec["podSelector"], tpl["metadata"].get("labels") or {})
                         for tpl, _ in receivers))
            problems = []
            if "Ingress" not in (spec.get("policyTypes") or []):
                problems.append("policyTypes lacks Ingress")
            for p in rule_ports:
                if not any(port_covers(p, n, "webhook") for n in hook_ports) or "endPort" in p:
                    problems.append(f"admits {p or 'every port'}, not only the webhook port")
            ck.problems(f"{nname}: admits the webhook port and nothing else", problems)
            continue
        ck.check(f"{nname}: selects every exporter pod",
                 bool(pods) and all(selector_matches(spec["podSelector"], tpl["metadata"].get("labels") or {})
                                    for _, tpl, _ in pods))
        problems = []
        if "Ingress" not in (spec.get("policyTypes") or []):
            problems.append("policyTypes lacks Ingress")
        admitting = []
        for rule in spec.get("ingress") or []:
            if any(port_covers(p, 10042, "metrics") for p in (rule.get("ports") or [{}])):
                admitting.append(rule)
        if not admitting:
            problems.append("no rule admits the metrics port")
        for rule in admitting:
            peers = rule.get("from")
            if not peers:
                problems.append("a rule admits the metrics port from everywhere")
                continue
            for peer in peers:
                ns = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                if peer.get("ipBlock") or ns != {"kubernetes.io/metadata.name": MONITORING_NAMESPACE} \
                        or (peer.get("namespaceSelector") or {}).get("matchExpressions"):
                    problems.append(f"metrics port admitted from {peer}")
        ck.problems(f"{nname}: metrics port admitted only from namespace {MONITORING_NAMESPACE}", problems)

    if receivers:
        # Every rule of every policy over the receiver's pods that admits its port (a catch-all
        # rule for a sidecar's application too) admits it only from the ingress namespace.
        problems = []
        admitted = False
        for np in policies:
            spec = np["spec"]
            if not any(selector_matches(spec["podSelector"], tpl["metadata"].get("labels") or {})
                       for tpl, _ in receivers):
                continue
            for rule in spec.get("ingress") or []:
                if not any(port_covers(p, n, "webhook") for p in (rule.get("ports") or [{}])
                           for n in hook_ports):
                    continue
                admitted = True
                peers = rule.get("from")
                if not peers:
                    problems.append(f"{np['metadata']['name']} admits it from everywhere")
                for peer in peers or []:
                    ns = peer.get("namespaceSelector") or {}
                    if peer.get("ipBlock") or "namespaceSelector" not in peer \
                            or ns.get("matchExpressions") or peer.get("podSelector") \
                            or ns.get("matchLabels") != {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}:
                        problems.append(f"{np['metadata']['name']} admits it from {peer}")
        if not admitted:
            problems.append("no NetworkPolicy admits it (add ../webhook's, or pods stay open)"
                            if not policies else "no NetworkPolicy admits it")
        ck.problems(f"{where}: the webhook port {sorted(hook_ports)} is admitted only from "
                    f"namespace {INGRESS_NAMESPACE}", problems)

    # Ingress: only the receiver's path, to the receiver's Service and port, with TLS.
    hook_paths = {hook["path"] for _, hook in receivers}
    by_name = {s["metadata"]["name"]: s for s in services}
    for ing in [o for o in objs if o["kind"] == "Ingress"]:
        iname = f"{where}: Ingress/{ing['metadata']['name']}"
        spec = ing["spec"]
        problems = []
        if spec.get("defaultBackend"):
            problems.append("has a defaultBackend (every other path would reach it)")
        hosts = set()
        for rule in spec.get("rules") or []:
            hosts.add(rule.get("host"))
            for path in (rule.get("http") or {}).get("paths") or []:
                svc_ref = (path.get("backend") or {}).get("service") or {}
                svc = by_name.get(svc_ref.get("name"))
                if svc is None:
                    problems.append(f"backend Service {svc_ref.get('name')} is not in the render")
                    continue
                ref = svc_ref.get("port") or {}
                sport = next((p for p in svc["spec"].get("ports", [])
                              if ("name" in ref and p.get("name") == ref["name"])
                              or ("number" in ref and p.get("port") == ref["number"])), None)
                if sport is None:
                    problems.append(f"port {ref} is not a port of Service {svc_ref.get('name')}")
                elif sport.get("targetPort") not in (["webhook"] + sorted(hook_ports)):
                    problems.append(f"routes to Service {svc_ref.get('name')} port {sport}, not "
                                    "the receiver's webhook port")
                if path.get("path") not in hook_paths or path.get("pathType") != "Exact":
                    problems.append(f"path {path.get('path')} ({path.get('pathType')}) is not "
                                    f"exactly the webhook path {sorted(hook_paths)}")
        tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
        if not hosts or None in hosts or hosts - tls_hosts:
            problems.append(f"hosts {sorted(h or '*' for h in hosts)} lack TLS (tls: {sorted(tls_hosts)})")
        ck.problems(f"{iname}: routes only {sorted(hook_paths)} (Exact) to the receiver's webhook "
                    "port, over TLS", problems)


def check_dockerfile(ck, ctx):
    d = ctx["docker"]
    cargo = ctx["cargo"]
    ck.check("Dockerfile: builder is a pinned Rust image on Debian 12 (rust:<version>-bookworm)",
             any(re.match(r"rust:(\$\{RUST_VERSION\}|\d+\.\d+(\.\d+)?)-bookworm\b", f) for f in d["from"])
             and re.fullmatch(r"\d+\.\d+(\.\d+)?", d["args"].get("RUST_VERSION", "")) is not None,
             f"FROM {d['from']}, RUST_VERSION={d['args'].get('RUST_VERSION')}")
    ck.check("Dockerfile: runtime is distroless cc-debian12:nonroot",
             d["from"] and d["from"][-1].startswith("gcr.io/distroless/cc-debian12:nonroot"), f"{d['from'][-1:]}")
    ck.check("Dockerfile: USER is numeric and non-root (uid:gid)",
             re.fullmatch(r"[1-9]\d*(:\d+)?", d["user"] or "") is not None, f"USER {d['user']}")
    port = listen_port(ctx["cli"]["defaults"].get("web.listen-address"))
    ck.check(f"Dockerfile: EXPOSE {port} (the --web.listen-address default)", str(port) in d["expose"],
             f"EXPOSE {d['expose']}")
    ck.check("Dockerfile: ENTRYPOINT in exec form", (d["entrypoint"] or "").startswith("["))
    hc = d["healthcheck"] or ""
    cmd = re.search(r"CMD\s+(\[.*\])", hc)
    hc_args = json.loads(cmd.group(1)) if cmd else []
    ck.check("Dockerfile: HEALTHCHECK in exec form runs the `healthcheck` subcommand of src/",
             len(hc_args) >= 2 and hc_args[1] == "healthcheck" and "healthcheck" in ctx["cli"]["subcommands"],
             f"HEALTHCHECK {hc}")
    labels = d["labels"]
    ck.check(f"Dockerfile: ARG VERSION default is Cargo.toml's version {cargo['version']}",
             d["args"].get("VERSION") == cargo["version"], f"VERSION={d['args'].get('VERSION')}")
    problems = []
    for key, want in [("org.opencontainers.image.source", cargo.get("repository")),
                      ("org.opencontainers.image.licenses", cargo.get("license")),
                      ("org.opencontainers.image.description", cargo.get("description")),
                      ("org.opencontainers.image.version", "${VERSION}")]:
        if labels.get(key) != want:
            problems.append(f"{key}={labels.get(key)!r}, want {want!r}")
    ck.problems("Dockerfile: OCI labels source, licenses, description, version match Cargo.toml", problems)
    # The revision ARG reaches the compiler only if src/ reads that variable at compile time.
    env_revision = re.findall(r"ENV\s+(LINQ_EXPORTER_REVISION)=", read(os.path.join(ROOT, "Dockerfile")))
    if env_revision:
        srcs = "".join(read(p) for p in glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True))
        if os.path.exists(os.path.join(ROOT, "build.rs")):
            srcs += read(os.path.join(ROOT, "build.rs"))
        ck.check("Dockerfile: LINQ_EXPORTER_REVISION is read at compile time by src/ or build.rs",
                 "LINQ_EXPORTER_REVISION" in srcs)


def dockerignore_admits(patterns, path):
    """Docker's .dockerignore semantics for the patterns used here: the last matching pattern wins,
    `!` re-admits, a pattern matching a directory applies to everything below it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        if p.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(x.split("/")[-1], p[3:]) or fnmatch.fnmatchcase(x, p[3:])
                      for x in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(x, p) and x.count("/") == p.count("/") for x in prefixes)
        if hit:
            excluded = not neg
    return not excluded


def check_dockerignore(ck, ctx):
    lines = [l.strip() for l in read(os.path.join(ROOT, ".dockerignore")).splitlines()]
    patterns = [l for l in lines if l and not l.startswith("#")]
    ck.check(".dockerignore: allow-list (starts with `*`)", patterns[:1] == ["*"])
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True).stdout.split()
    admitted = {f for f in files if dockerignore_admits(patterns, f)}
    needed = ["Cargo.toml", "Cargo.lock"] + [f for f in files if f in ("build.rs", ".cargo/config.toml")]
    # Every source file, every declared target, every file included at compile time.
    needed += [f for f in files if f.startswith("src/")]
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as fh:
        manifest = tomllib.load(fh)
    for kind in ("lib", "bin", "test", "bench", "example"):
        targets = manifest.get(kind) or []
        for t in targets if isinstance(targets, list) else [targets]:
            if t.get("path"):
                needed.append(t["path"])
    for src in [f for f in files if f.endswith(".rs")]:
        for inc in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', read(os.path.join(ROOT, src))):
            needed.append(os.path.normpath(os.path.join(os.path.dirname(src), inc)))
    missing = sorted({n for n in needed if n not in admitted})
    ck.check(".dockerignore: admits Cargo.toml, Cargo.lock, .cargo/config.toml, src/, declared targets, "
             "included files",
             not missing, f"not in the build context: {missing}")
    leaked = sorted(f for f in admitted if f.startswith(("target/", ".git/", "deploy/", "docs/"))
                    or re.search(r"(^|/)\.env$|\.(key|pem)$", f))
    ck.check(".dockerignore: keeps target/, .git/, deploy/, docs/ and key files out", not leaked,
             f"admitted: {leaked[:10]}")


def check_secret_example(ck, example, key, mounted_by, what):
    """example: a Secret example (relative to deploy/kubernetes) with the one key `key` holding a
    REPLACE_WITH_... placeholder; mounted_by: the manifest whose volumes must mount exactly it."""
    path = os.path.join(KDIR, example)
    docs = [d for d in yaml.safe_load_all(read(path)) if d]
    import kubernetes_validate
    ok = len(docs) == 1 and docs[0]["kind"] == "Secret"
    problems = [] if ok else ["expected exactly one Secret"]
    if ok:
        s = docs[0]
        data = dict(s.get("stringData") or {})
        if s.get("data"):
            problems.append("uses base64 `data` (use stringData with a visible placeholder)")
        if list(data) != [key]:
            problems.append(f"keys {list(data)}, want [{key}]")
        if not all(re.fullmatch(r"REPLACE_WITH_[A-Z_]+", v or "") for v in data.values()):
            problems.append("value is not a REPLACE_WITH_... placeholder")
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(s, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{version}: {e.message}")
    ck.problems(f"{example}: one Secret `{key}` with a placeholder, valid for "
                f"Kubernetes {', '.join(K8S_VERSIONS)}", problems)
    # The name and key the manifests mount.
    refs, keys = set(), set()
    for d in yaml.safe_load_all(read(os.path.join(KDIR, mounted_by))):
        for v in (d or {}).get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
            if "secret" in v:
                refs.add(v["secret"]["secretName"])
                keys.update(i["key"] for i in v["secret"].get("items") or [])
    ck.check(f"{example}: its name and key are the Secret {what} mounts",
             ok and refs == {docs[0]["metadata"]["name"]} and keys <= {key},
             f"mounted {refs}, keys {keys}")


def check_docs(ck, ctx):
    path = os.path.join(ROOT, "README.md")
    if not os.path.exists(path):
        ck.check("README.md exists", False)
        return
    # The README and the pages it sends readers to (docs/configuration.md has the flag table;
    # scripts/check-docs.py checks that table entry by entry).
    text = "\n".join(read(p) for p in [path] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))))
    envs = set(re.findall(r"\b(LINQ_[A-Z0-9_]+)\b", text))
    # Not flags: read at compile time (build.rs), or by the test scripts.
    compile_time = {"LINQ_EXPORTER_REVISION", "LINQ_EXPORTER_BIN"}
    ck.check("README.md, docs/*.md: every LINQ_* env name exists in src/",
             not (envs - ctx["cli"]["envs"] - compile_time), f"unknown: {sorted(envs - ctx['cli']['envs'] - compile_time)}")
    flags = set(re.findall(r"--((?:linq|web|log|demo|webhook)\.[a-z0-9\-]+(?:\.[a-z0-9\-]+)*)", text))
    ck.check("README.md, docs/*.md: every --linq./--web./--log./--webhook. flag exists in src/",
             not (flags - ctx["cli"]["flags"]), f"unknown: {sorted(flags - ctx['cli']['flags'])}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", help="write 'passed failed' to this file")
    args = parser.parse_args()
    ck = Checker()

    cli = cli_facts()
    docker = dockerfile_facts()
    uid = int(docker["user"].split(":")[0]) if docker["user"] and docker["user"][0].isdigit() else None
    ctx = {"cargo": cargo_facts(), "cli": cli, "docker": docker, "docker_uid": uid,
           "served": served_paths(), "alert_jobs": alert_jobs(), "telemetry_paths": set()}
    ck.check("src/ (clap): env names, flags and defaults parsed",
             len(cli["envs"]) >= 10 and "web.listen-address" in cli["defaults"]
             and "web.telemetry-path" in cli["defaults"], f"{len(cli['envs'])} env names")
    ck.check("src/: serves /healthz and /readyz", {"/healthz", "/readyz"} <= ctx["served"],
             f"found {sorted(ctx['served'])}")

    check_dockerfile(ck, ctx)
    check_dockerignore(ck, ctx)

    dirs = kustomizations()
    ck.check(f"deploy/kubernetes: {len(dirs)} kustomizations found", len(dirs) >= 3)
    for directory in dirs:
        where = rel(directory)
        objs, err = render(directory)
        if not ck.check(f"{where}: kubectl kustomize renders", objs is not None, err):
            continue
        check_render(ck, where, objs, ctx)

    check_secret_example(ck, "secret.example.yaml", "api-key", "base/deployment.yaml",
                         "the Deployment")
    check_secret_example(ck, "webhook/secret.example.yaml", "signing-secret",
                         "webhook/deployment-patch.yaml", "the webhook component")
    check_docs(ck, ctx)

    return ck.finish("manifests", args.counts)


if __name__ == "__main__":
    sys.exit(main())
