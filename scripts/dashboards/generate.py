#!/usr/bin/env python3
"""Generate the Grafana dashboards and Grafana-managed alert rules of linq-exporter.

Writes
  dashboards/linq-chats.json
  dashboards/linq-exporter.json
  dashboards/provisioning/alerting/linq-alerts.yaml   (from deploy/prometheus/alerts.yaml)

The committed files are the product; this script is how they are kept consistent. Edit it and
re-run `python3 scripts/dashboards/generate.py`; `--check` (run by scripts/ci-dashboards.sh) fails
when a committed file differs from what the script generates.
"""

import argparse
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import promql  # noqa: E402

DS = {"type": "prometheus", "uid": "${datasource}"}

# Uid of the Prometheus datasource that the Grafana-managed alert rules query. It must match the
# datasource Grafana has; dashboards/provisioning/datasources/prometheus.yaml provisions one with it.
ALERT_DATASOURCE_UID = "prometheus"
ALERT_FOLDER = "Linq"

RUNBOOK_BASE = "https://github.com/linq-exporter/linq-exporter/blob/main/docs/runbooks.md#"

# Selectors. Every dashboard query filters on the variables that apply to its metric.
EXP = 'job=~"$job", instance=~"$instance"'
NUM = EXP + ', phone_number=~"$phone_number"'
SVC = NUM + ', service=~"$service"'
CHAT_JOIN = "on (job, instance, chat_id, phone_number)"

SCORE_THRESHOLDS = {
    "mode": "absolute",
    "steps": [
        {"color": "red", "value": None},
        {"color": "orange", "value": 30},
        {"color": "green", "value": 60},
    ],
}
STATUS_COLORS = {
    "HEALTHY": "green",
    "AT_RISK": "orange",
    "CRITICAL": "red",
    "OPTED_OUT": "text",
}


# Line reputation (linq_phone_number_reputation{status}) as a number, for graphs and per-number
# tables: worse is higher, so max() over several exporters picks the worst. Statuses Linq may add
# are exported as sent; they show as "other" here and by name in the "Line reputation now" table.
REPUTATION_CODES = (("HEALTHY", 0, "green"), ("AT_RISK", 2, "orange"), ("CRITICAL", 3, "red"))
REPUTATION_OTHER = (1, "blue")
REPUTATION_MAPPINGS = [{
    "options": {
        **{str(code): {"color": color, "index": i, "text": status}
           for i, (status, code, color) in enumerate(REPUTATION_CODES)},
        str(REPUTATION_OTHER[0]): {"color": REPUTATION_OTHER[1], "index": len(REPUTATION_CODES),
                                   "text": "other"},
    },
    "type": "value",
}]


def reputation_code(selector):
    """max by (phone_number) of the numeric reputation of the numbers selector selects."""
    known = "|".join(status for status, _, _ in REPUTATION_CODES)
    parts = [f'{code} * linq_phone_number_reputation{{{selector}, status="{status}"}}'
             for status, code, _ in REPUTATION_CODES]
    parts.append(f'{REPUTATION_OTHER[0]} * linq_phone_number_reputation{{{selector}, '
                 f'status!~"{known}"}}')
    return "max by (phone_number) (" + " or ".join(parts) + ")"


# Line type (linq_phone_number_info{line_type}) as a number, for the per-number summary table, whose
# columns are merged on phone_number: a label column would have to be carried by every query of
# the table. Types Linq may add are exported as sent; they show as "other".
LINE_TYPES = (("iMessage", 1, "blue"), ("RCS", 2, "purple"))
LINE_TYPE_OTHER = (3, "text")
LINE_TYPE_MAPPINGS = [{
    "options": {
        **{str(code): {"color": color, "index": i, "text": line_type}
           for i, (line_type, code, color) in enumerate(LINE_TYPES)},
        str(LINE_TYPE_OTHER[0]): {"color": LINE_TYPE_OTHER[1], "index": len(LINE_TYPES),
                                  "text": "other"},
    },
    "type": "value",
}]


def line_type_code(selector):
    """max by (phone_number) of the numeric line type of the numbers selector selects."""
    known = "|".join(line_type for line_type, _, _ in LINE_TYPES)
    parts = [f'{code} * linq_phone_number_info{{{selector}, line_type="{line_type}"}}'
             for line_type, code, _ in LINE_TYPES]
    parts.append(f'{LINE_TYPE_OTHER[0]} * linq_phone_number_info{{{selector}, '
                 f'line_type!~"{known}"}}')
    return "max by (phone_number) (" + " or ".join(parts) + ")"


# Line status from Linq's phone_number.status_updated webhooks (linq_phone_number_status{status}),
# as a number for the state timeline: worse is higher, so max() over several receivers picks the
# worst. Statuses Linq may add are exported as sent; they show as "other" here and by name in the
# "Line status now" table. A line without a status event has no series: unknown, never ACTIVE.
LINE_STATUS_CODES = (("ACTIVE", 0, "green"), ("FLAGGED", 3, "red"))
LINE_STATUS_OTHER = (1, "blue")
LINE_STATUS_MAPPINGS = [{
    "options": {
        **{str(code): {"color": color, "index": i, "text": status}
           for i, (status, code, color) in enumerate(LINE_STATUS_CODES)},
        str(LINE_STATUS_OTHER[0]): {"color": LINE_STATUS_OTHER[1],
                                    "index": len(LINE_STATUS_CODES), "text": "other"},
    },
    "type": "value",
}]


def line_status_code(selector):
    """max by (phone_number) of the numeric line status of the numbers selector selects."""
    known = "|".join(status for status, _, _ in LINE_STATUS_CODES)
    parts = [f'{code} * linq_phone_number_status{{{selector}, status="{status}"}}'
             for status, code, _ in LINE_STATUS_CODES]
    parts.append(f'{LINE_STATUS_OTHER[0]} * linq_phone_number_status{{{selector}, '
                 f'status!~"{known}"}}')
    return "max by (phone_number) (" + " or ".join(parts) + ")"


# Message events (linq_message_events_total{event}) in the colours the delivery panels share.
MESSAGE_EVENT_COLORS = {
    "sent": "blue",
    "delivered": "green",
    "read": "purple",
    "received": "text",
    "failed": "red",
}


# linq_chats_by_health_score is a classic histogram (issue 18): each number's scored chats in
# cumulative buckets _bucket{le} with le 10, 20, ..., 100 and +Inf, plus _sum and _count. Prometheus
# 3 stores classic-histogram le values normalised ("100" as "100.0"), and Prometheus 2 does the
# same for protobuf scrapes: a matcher on a finite le must accept both (le=~"100(\\.0)?"), and an
# override on a bucket's legend ({{le}}) matches both (le_override). "+Inf" is spelt alike.
def le_override(values, color):
    """Colour the legend entries {{le}} of these bucket bounds, "10" or "10.0" alike."""
    return {
        "matcher": {"id": "byRegexp",
                    "options": "^(" + "|".join(str(v) for v in values) + ")(\\.0)?$"},
        "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
    }


def quantile(q, metric, by, selector, window):
    """The q-quantile of a histogram, from its native series (Prometheus ingesting it as a native
    histogram, which has no _bucket series) or else its classic buckets. Native first: when a
    Prometheus switches to native ingestion (turning the feature on, or the exporter's first
    interval after a restart, served classic until its protobuf form is rendered) the stale
    classic buckets stay in the window, and `or` keeps its left side for the same labels."""
    return (f"histogram_quantile({q}, sum by ({by}) (rate({metric}{{{selector}}}[{window}]))) or "
            f"histogram_quantile({q}, sum by (le, {by}) "
            f"(rate({metric}_bucket{{{selector}}}[{window}])))")


def green_only():
    return {"mode": "absolute", "steps": [{"color": "green", "value": None}]}


def steps(*pairs):
    """steps(("green", None), ("red", 1)) -> thresholds."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in pairs]}


def target(expr, legend="__auto", ref="A", instant=False, fmt="time_series"):
    t = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
        "refId": ref,
    }
    return t


def color_override(name, color):
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
    }


def dashed_override(ref, color=None):
    """A reference line: target ref drawn dashed, without fill."""
    props = [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
             {"id": "custom.fillOpacity", "value": 0}]
    if color:
        props.append({"id": "color", "value": {"fixedColor": color, "mode": "fixed"}})
    return {"matcher": {"id": "byFrameRefID", "options": ref}, "properties": props}


def status_overrides():
    return [color_override(k, v) for k, v in STATUS_COLORS.items()]


class Dashboard:
    """Panels laid out left to right, top to bottom, with ids in creation order.

    Panel ids are what links and embeds (viewPanel=, d-solo) refer to, so a panel added after the
    first release takes an explicit pid above the highest existing id instead of shifting the
    ids of the panels that follow it.
    """

    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.y = 0
        self.x = 0
        self.row_h = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def _id(self, pid):
        if pid is not None:
            return pid
        self.next_id += 1
        return self.next_id - 1

    def row(self, title, pid=None):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        self.panels.append({
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "id": self._id(pid),
            "panels": [],
            "title": title,
            "type": "row",
        })
        self.y += 1

    def add(self, ptype, title, description, targets, w, h, unit=None, thresholds=None,
            options=None, custom=None, overrides=None, mappings=None, transformations=None,
            min_=None, max_=None, decimals=None, color=None, pid=None):
        defaults = {
            "color": color or {"mode": "palette-classic" if ptype in ("timeseries", "piechart")
                               else "thresholds"},
            "mappings": mappings or [],
            "thresholds": thresholds or green_only(),
        }
        if unit is not None:
            defaults["unit"] = unit
        if min_ is not None:
            defaults["min"] = min_
        if max_ is not None:
            defaults["max"] = max_
        if decimals is not None:
            defaults["decimals"] = decimals
        if custom is not None:
            defaults["custom"] = custom
        panel = {
            "datasource": DS,
            "description": description,
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "gridPos": self._place(w, h),
            "id": self._id(pid),
            "options": options or {},
            "targets": targets,
            "title": title,
            "type": ptype,
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)
        return panel

    # -- panel kinds -----------------------------------------------------------------------

    def stat(self, title, description, targets, w=4, h=4, unit="short", thresholds=None,
             mappings=None, graph=True, text_mode="auto", color_mode="value", decimals=None,
             pid=None, overrides=None):
        return self.add("stat", title, description, targets, w, h, unit=unit,
                        thresholds=thresholds, mappings=mappings, decimals=decimals, pid=pid,
                        overrides=overrides,
                        options={
                            "colorMode": color_mode,
                            "graphMode": "area" if graph else "none",
                            "justifyMode": "auto",
                            "orientation": "auto",
                            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                              "values": False},
                            "showPercentChange": False,
                            "textMode": text_mode,
                            "wideLayout": True,
                        })

    def timeseries(self, title, description, targets, w=12, h=8, unit="short", stack=False,
                   thresholds=None, threshold_style="off", overrides=None, min_=0, max_=None,
                   interpolation="linear", fill=10, decimals=None, pid=None):
        custom = {
            "axisBorderShow": False,
            "axisCenteredZero": False,
            "axisColorMode": "text",
            "axisLabel": "",
            "axisPlacement": "auto",
            "barAlignment": 0,
            "drawStyle": "line",
            "fillOpacity": 60 if stack else fill,
            "gradientMode": "none",
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "insertNulls": False,
            "lineInterpolation": interpolation,
            "lineWidth": 1,
            "pointSize": 5,
            "scaleDistribution": {"type": "linear"},
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
            "thresholdsStyle": {"mode": threshold_style},
        }
        return self.add("timeseries", title, description, targets, w, h, unit=unit,
                        thresholds=thresholds, custom=custom, overrides=overrides, min_=min_,
                        max_=max_, decimals=decimals, pid=pid,
                        options={
                            "legend": {"calcs": ["lastNotNull", "max"], "displayMode": "table",
                                       "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"},
                        })

    def bargauge(self, title, description, targets, w=6, h=8, unit="short", thresholds=None,
                 overrides=None, orientation="horizontal", min_=0, color=None):
        return self.add("bargauge", title, description, targets, w, h, unit=unit,
                        thresholds=thresholds, overrides=overrides, min_=min_, color=color,
                        options={
                            "displayMode": "gradient",
                            "maxVizHeight": 300,
                            "minVizHeight": 16,
                            "minVizWidth": 8,
                            "namePlacement": "auto",
                            "orientation": orientation,
                            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                              "values": False},
                            "showUnfilled": True,
                            "sizing": "auto",
                            "valueMode": "color",
                        })

    def piechart(self, title, description, targets, w=6, h=8, unit="short"):
        return self.add("piechart", title, description, targets, w, h, unit=unit,
                        custom={"hideFrom": {"legend": False, "tooltip": False, "viz": False}},
                        options={
                            "displayLabels": ["percent"],
                            "legend": {"displayMode": "table", "placement": "right",
                                       "showLegend": True, "values": ["value", "percent"]},
                            "pieType": "donut",
                            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                              "values": False},
                            "tooltip": {"mode": "single", "sort": "none"},
                        })

    def gauge(self, title, description, targets, w=6, h=8, unit="none", thresholds=None,
              min_=0, max_=100, decimals=None):
        return self.add("gauge", title, description, targets, w, h, unit=unit,
                        thresholds=thresholds, min_=min_, max_=max_, decimals=decimals,
                        options={
                            "minVizHeight": 75,
                            "minVizWidth": 75,
                            "orientation": "auto",
                            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                              "values": False},
                            "showThresholdLabels": False,
                            "showThresholdMarkers": True,
                            "sizing": "auto",
                        })

    def table(self, title, description, targets, w=12, h=10, overrides=None,
              transformations=None, sort_by=None, unit=None, mappings=None, pid=None):
        return self.add("table", title, description, targets, w, h, unit=unit,
                        overrides=overrides, transformations=transformations,
                        mappings=mappings, pid=pid,
                        custom={"align": "auto", "cellOptions": {"type": "auto"},
                                "filterable": True, "inspect": False},
                        options={
                            "cellHeight": "sm",
                            "footer": {"countRows": False, "fields": "", "reducer": ["sum"],
                                       "show": False},
                            "showHeader": True,
                            "sortBy": sort_by or [],
                        })

    def state_timeline(self, title, description, targets, w=12, h=8, mappings=None,
                       min_=None, max_=None, pid=None):
        return self.add("state-timeline", title, description, targets, w, h, unit="none",
                        mappings=mappings, min_=min_, max_=max_, pid=pid,
                        custom={"fillOpacity": 80, "hideFrom": {"legend": False,
                                                               "tooltip": False, "viz": False},
                                "lineWidth": 0},
                        options={
                            "alignValue": "center",
                            "legend": {"displayMode": "list", "placement": "bottom",
                                       "showLegend": True},
                            "mergeValues": True,
                            "rowHeight": 0.9,
                            "showValue": "auto",
                            "tooltip": {"mode": "single", "sort": "none"},
                        })

    def heatmap(self, title, description, targets, w=12, h=8, y_label="score ≤", y_unit="none",
                cells="Chats", pid=None):
        return self.add("heatmap", title, description, targets, w, h, pid=pid,
                        custom={"hideFrom": {"legend": False, "tooltip": False, "viz": False},
                                "scaleDistribution": {"type": "linear"}},
                        options={
                            "calculate": False,
                            "cellGap": 1,
                            "color": {"exponent": 0.5, "fill": "dark-orange", "mode": "scheme",
                                      "reverse": False, "scale": "exponential",
                                      "scheme": "Oranges", "steps": 64},
                            "exemplars": {"color": "rgba(255,0,255,0.7)"},
                            "filterValues": {"le": 1e-9},
                            "legend": {"show": True},
                            "rowsFrame": {"layout": "auto", "value": cells},
                            "tooltip": {"mode": "single", "showColorScale": False,
                                        "yHistogram": False},
                            "yAxis": {"axisLabel": y_label, "axisPlacement": "left",
                                      "reverse": False, "unit": y_unit},
                        })


def variables():
    def query_var(name, label, query, description):
        return {
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": DS,
            "definition": query,
            "description": description,
            "hide": 0,
            "includeAll": True,
            "label": label,
            "multi": True,
            "name": name,
            "options": [],
            # The plain-string form: every Grafana 10/11 Prometheus data source parses it into
            # its variable editor (label values of a metric) and runs it.
            "query": query,
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }

    return {"list": [
        {
            "current": {},
            "description": "Prometheus data source that scrapes linq-exporter.",
            "hide": 0,
            "includeAll": False,
            "label": "Data source",
            "multi": False,
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
            "type": "datasource",
        },
        query_var("job", "Job", "label_values(linq_up, job)",
                  "Prometheus job(s) scraping linq-exporter."),
        query_var("instance", "Instance", 'label_values(linq_up{job=~"$job"}, instance)',
                  "Exporter instance(s). With redundant exporters on one Linq account, pick one: "
                  "counts are summed over the selected instances."),
        query_var("phone_number", "Number",
                  'label_values(linq_chats{job=~"$job", instance=~"$instance"}, phone_number)',
                  "Linq phone number(s) the chats belong to."),
        query_var("service", "Service",
                  'label_values(linq_chats{job=~"$job", instance=~"$instance", '
                  'phone_number=~"$phone_number"}, service)',
                  "Chat service (iMessage, SMS, RCS, ...). Health-status and score-bucket panels "
                  "ignore it: the exporter aggregates those per number only."),
    ]}


def dashboard_json(uid, title, description, tags, dash, refresh="1m", time_from="now-6h"):
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [{
            "asDropdown": False,
            "icon": "external link",
            "includeVars": True,
            "keepTime": True,
            "tags": ["linq-exporter"],
            "targetBlank": False,
            "title": "Linq dashboards",
            "tooltip": "",
            "type": "dashboards",
            "url": "",
        }],
        "panels": dash.panels,
        "refresh": refresh,
        "schemaVersion": 39,
        "tags": tags,
        "templating": variables(),
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# ------------------------------------------------------------------------------------------------
# linq-chats.json
# ------------------------------------------------------------------------------------------------

def chats_dashboard():
    d = Dashboard()
    per_number_note = (" The service filter does not apply: the exporter aggregates health per "
                       "number.")

    d.row("Overview")
    d.stat("Chats", "Chats in the last complete sweep (linq_chats), for the selected numbers and "
           "services.", [target(f"sum(linq_chats{{{SVC}}})")])
    d.stat("Archived chats", "Chats marked archived in Linq (archived), and chats whose "
           "archived state is unknown (unknown): the API omitted the deprecated is_archived "
           "field, so the exporter labels them is_archived=\"unknown\". Once Linq removes the "
           "field, every chat counts as unknown and archived drops to 0.",
           [target(f'sum(linq_chats{{{SVC}, is_archived="true"}}) or '
                   f"0 * sum(linq_chats{{{SVC}}})", legend="archived"),
            target(f'sum(linq_chats{{{SVC}, is_archived="unknown"}}) or '
                   f"0 * sum(linq_chats{{{SVC}}})", legend="unknown", ref="B")],
           overrides=[color_override("unknown", "text")])
    d.stat("Group chats", "Chats with more than one other participant.",
           [target(f'sum(linq_chats{{{SVC}, is_group="true"}})')])
    d.stat("Phone numbers", "Linq phone numbers with chats.",
           [target(f"count(count by (phone_number) (linq_chats{{{SVC}}}))")], graph=False)
    d.stat("CRITICAL chats", "Chats whose Linq health status is CRITICAL." + per_number_note,
           [target(f'sum(linq_chats_by_health_status{{{NUM}, status="CRITICAL"}})')],
           thresholds=steps(("green", None), ("red", 1)))
    d.stat("AT_RISK chats", "Chats whose Linq health status is AT_RISK." + per_number_note,
           [target(f'sum(linq_chats_by_health_status{{{NUM}, status="AT_RISK"}})')],
           thresholds=steps(("green", None), ("orange", 1)))

    d.piechart("Chats by service", "Chats by the service Linq reports for the chat "
               "(unknown: Linq sent none).",
               [target(f"sum by (service) (linq_chats{{{SVC}}})", legend="{{service}}",
                       instant=True)])
    d.gauge("Mean health score", "Mean Linq health score (0-100) of the scored chats. Red below "
            "30, amber below 60. Computed from the per-chat series at the current time only.",
            [target(f"avg(linq_chat_health_score{{{NUM}}} * {CHAT_JOIN} "
                    f"linq_chat_info{{{SVC}}})", instant=True)],
            thresholds=SCORE_THRESHOLDS, decimals=1)
    d.bargauge("Chats by health status now", "Chats by Linq health status now (chats without a "
               "health status are not counted)." + per_number_note,
               [target(f"sum by (status) (linq_chats_by_health_status{{{NUM}}})",
                       legend="{{status}}", instant=True)],
               overrides=status_overrides(), color={"mode": "fixed", "fixedColor": "blue"})
    d.bargauge("Health score distribution", "Scored chats per band of 10 health points, from "
               "the buckets of the histogram linq_chats_by_health_score (cumulative; the "
               "panel's heatmap format turns them into bands): the bar labelled 30 counts "
               "scores above 20 and at most 30 (Prometheus 3 labels it 30.0). Red bands are "
               "below 30, amber below 60. The +Inf bucket is left out: scores stop at 100."
               + per_number_note,
               [target(f'sum by (le) (linq_chats_by_health_score_bucket{{{NUM}, le!="+Inf"}})',
                       legend="{{le}}", instant=True, fmt="heatmap")],
               orientation="vertical", color={"mode": "fixed", "fixedColor": "green"},
               overrides=[le_override((10, 20, 30), "red"),
                          le_override((40, 50, 60), "orange")])

    d.row("Line reputation", pid=28)
    d.table("Line reputation now", "The reputation Linq gives each of the account's numbers "
            "(GET /v3/phone_numbers, beta): HEALTHY, AT_RISK, CRITICAL, or a newer status as "
            "sent. LinqLineReputationCritical fires for a line CRITICAL for 5 minutes. Lists "
            "every number of the account, with chats or not, and its line type (iMessage or RCS, "
            "joined from linq_phone_number_info on phone_number; empty from exporters that "
            "predate it); the service filter does not apply.",
            [target(f"linq_phone_number_reputation{{{NUM}}} * on (job, instance, phone_number) "
                    f"group_left (line_type) linq_phone_number_info{{{NUM}}} "
                    f"or on (job, instance, phone_number) linq_phone_number_reputation{{{NUM}}}",
                    instant=True, fmt="table")],
            w=8, h=8, pid=29,
            overrides=[{
                "matcher": {"id": "byName", "options": "Reputation"},
                "properties": [
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    {"id": "mappings", "value": [{
                        "options": {status: {"color": color, "index": i}
                                    for i, (status, _, color) in enumerate(REPUTATION_CODES)},
                        "type": "value"}]},
                ],
            }],
            transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True, "job": True, "__name__": True, "Value": True},
                "indexByName": {"phone_number": 0, "line_type": 1, "status": 2, "instance": 3},
                "renameByName": {"phone_number": "Number", "line_type": "Line type",
                                 "status": "Reputation", "instance": "Exporter"},
            }}],
            sort_by=[{"desc": False, "displayName": "Number"}])
    d.state_timeline("Line reputation over time", "Each number's line reputation over time "
                     "(the worst one when several exporters report it). 'other' is a status "
                     "newer than HEALTHY / AT_RISK / CRITICAL; the table on the left names it.",
                     [target(reputation_code(NUM), legend="{{phone_number}}")],
                     w=16, h=8, mappings=REPUTATION_MAPPINGS, min_=0, max_=3, pid=30)

    # Added after the first release: explicit ids above the highest existing one (31).
    rate = "$__rate_interval"
    receiver_note = (" Empty while the exporter's webhook receiver is off "
                     "(--webhook.listen-address, see docs/webhooks.md).")
    d.row("Message delivery", pid=32)
    d.timeseries("Message events by kind", "Message events per second from Linq's signed "
                 "webhooks, by kind: sent, received, delivered, read, failed "
                 "(linq_message_events_total; an event Linq retries is counted once)."
                 + receiver_note,
                 [target(f"sum by (event) (rate(linq_message_events_total{{{SVC}}}[{rate}]))",
                         legend="{{event}}")],
                 w=10, unit="cps", pid=33,
                 overrides=[color_override(k, v) for k, v in MESSAGE_EVENT_COLORS.items()])
    d.timeseries("Delivery ratio per number", "Messages delivered ÷ messages sent, per number "
                 "(message.delivered and message.sent webhooks). Deliveries lag their sends, so "
                 "short windows can read above 100%; a falling ratio means messages stop "
                 "reaching handsets." + receiver_note,
                 [target(f'sum by (phone_number) (rate(linq_message_events_total{{{SVC}, '
                         f'event="delivered"}}[{rate}])) / sum by (phone_number) '
                         f'(rate(linq_message_events_total{{{SVC}, event="sent"}}[{rate}]))',
                         legend="{{phone_number}}")],
                 w=10, unit="percentunit", pid=34)
    d.stat("Since last webhook event", "Time since the receiver last verified an event from "
           "Linq (linq_webhook_last_event_timestamp_seconds), per exporter. No value until the "
           "first event after a start. LinqWebhooksSilent fires after an hour without events."
           + receiver_note,
           [target(f"time() - (linq_webhook_last_event_timestamp_seconds{{{EXP}}} > 0)",
                   legend="{{instance}}")],
           w=4, h=8, unit="s", pid=35,
           thresholds=steps(("green", None), ("orange", 900), ("red", 3600)))
    d.timeseries("Failures by error code", "message.failed events per second by Linq's error "
                 "code (linq_message_failures_total), across the selected numbers and services. "
                 "The code says why: look it up in Linq's error reference." + receiver_note,
                 [target(f"sum by (error_code) (rate(linq_message_failures_total{{{SVC}}}"
                         f"[{rate}]))", legend="code {{error_code}}")],
                 unit="cps", pid=36)
    d.timeseries("Failure ratio per number", "Messages failed ÷ messages sent, per number. "
                 "LinqMessageFailuresHigh fires when this exceeds 5% over 15 minutes with at "
                 "least 20 messages sent in them, for 5 minutes." + receiver_note,
                 [target(f'sum by (phone_number) (rate(linq_message_events_total{{{SVC}, '
                         f'event="failed"}}[{rate}])) / sum by (phone_number) '
                         f'(rate(linq_message_events_total{{{SVC}, event="sent"}}[{rate}]))',
                         legend="{{phone_number}}")],
                 unit="percentunit", thresholds=steps(("green", None), ("red", 0.05)),
                 threshold_style="line", pid=37)
    d.table("Line status now", "Each number's line status from Linq's "
            "phone_number.status_updated webhooks (linq_phone_number_status): ACTIVE, FLAGGED, "
            "or a newer status as sent. A number that is not listed has no known status: the "
            "receiver has seen no status event for it since the exporter started (it is never "
            "assumed ACTIVE). LinqLineFlagged fires for a FLAGGED line. The service filter does "
            "not apply." + receiver_note,
            [target(f"linq_phone_number_status{{{NUM}}}", instant=True, fmt="table")],
            w=8, h=8, pid=38,
            overrides=[{
                "matcher": {"id": "byName", "options": "Status"},
                "properties": [
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    {"id": "mappings", "value": [{
                        "options": {status: {"color": color, "index": i}
                                    for i, (status, _, color) in enumerate(LINE_STATUS_CODES)},
                        "type": "value"}]},
                ],
            }],
            transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True, "job": True, "__name__": True, "Value": True},
                "indexByName": {"phone_number": 0, "status": 1, "instance": 2},
                "renameByName": {"phone_number": "Number", "status": "Status",
                                 "instance": "Exporter"},
            }}],
            sort_by=[{"desc": False, "displayName": "Number"}])
    d.state_timeline("Line status over time", "Each number's line status over time (the worst "
                     "one when several exporters report it); gaps are times without a known "
                     "status. 'other' is a status newer than ACTIVE / FLAGGED; the table on the "
                     "left names it." + receiver_note,
                     [target(line_status_code(NUM), legend="{{phone_number}}")],
                     w=16, h=8, mappings=LINE_STATUS_MAPPINGS, min_=0, max_=3, pid=39)

    # Added with issue 18: ids above the highest existing one (39).
    native_note = (" Works whether Prometheus stores the histogram as classic buckets (_bucket "
                   "series) or, scraping protobuf with native histograms enabled, as a native "
                   "histogram (no _bucket series): the query tries both.")
    d.row("Message latency", pid=40)
    for pid, metric, what, events in (
            (41, "linq_message_delivery_seconds", "Delivery latency",
             "delivered_at - sent_at of each message.delivered webhook"),
            (42, "linq_message_read_seconds", "Read latency",
             "read_at - delivered_at of each message.read webhook")):
        d.timeseries(what, f"{what} quantiles (p50, p90, p99) per number and service: "
                     f"{events} ({metric}), over Grafana's rate interval. Timestamps that are "
                     "missing, unparseable or out of order are not observed: see Timestamps not "
                     "observed on the Linq / Exporter dashboard." + native_note + receiver_note,
                     [target(quantile(q, metric, "phone_number, service", SVC, rate), ref=ref,
                             legend=f"p{int(q * 100)} {{{{phone_number}}}} {{{{service}}}}")
                      for ref, q in (("A", 0.5), ("B", 0.9), ("C", 0.99))],
                     unit="s", pid=pid)
    d.timeseries("p90 delivery latency per number", "90th percentile of delivery latency "
                 "(delivered_at - sent_at) per number over 15 minutes, all services together: "
                 "what LinqMessageDeliverySlow alerts on (above 60 s for 15 minutes, with at "
                 "least 20 deliveries in the 15 minutes; red line)." + native_note
                 + receiver_note,
                 [target(quantile(0.9, "linq_message_delivery_seconds", "phone_number", SVC,
                                  "15m"), legend="{{phone_number}}")],
                 w=8, unit="s", thresholds=steps(("green", None), ("red", 60)),
                 threshold_style="line", pid=43)
    d.heatmap("Delivery latency heatmap", "Messages delivered per second by delivery latency "
              "(delivered_at - sent_at), from the classic buckets of "
              "linq_message_delivery_seconds (0.1 s to 1 day; the top row is over a day). A "
              "Prometheus that ingests it as a native histogram has no _bucket series and this "
              "panel stays empty: Grafana's heatmap then needs the native series, "
              "sum(rate(linq_message_delivery_seconds{...}[rate interval])) with Format "
              "Heatmap." + receiver_note,
              [target(f"sum by (le) (rate(linq_message_delivery_seconds_bucket{{{SVC}}}"
                      f"[{rate}]))", legend="{{le}}", fmt="heatmap")],
              w=16, y_label="delivered within", y_unit="s", cells="Deliveries/s", pid=44)

    d.row("Health over time")
    d.timeseries("Chats by health status over time", "Chats per Linq health status over time."
                 + per_number_note,
                 [target(f"sum by (status) (linq_chats_by_health_status{{{NUM}}})",
                         legend="{{status}}")],
                 stack=True, overrides=status_overrides())
    d.timeseries("AT_RISK or CRITICAL share per number", "Share of each number's chats (of "
                 "those with a health status) that are AT_RISK or CRITICAL. The "
                 "LinqChatsAtRiskHigh alert fires above 10% for 15 minutes.",
                 [target(f'sum by (phone_number) (linq_chats_by_health_status{{{NUM}, '
                         f'status=~"AT_RISK|CRITICAL"}}) / sum by (phone_number) '
                         f'(linq_chats_by_health_status{{{NUM}}})', legend="{{phone_number}}")],
                 unit="percentunit", thresholds=steps(("green", None), ("red", 0.1)),
                 threshold_style="line", max_=None)
    d.heatmap("Health score distribution over time", "Scored chats per band of 10 health "
              "points over time, from the buckets of the histogram linq_chats_by_health_score "
              "(each sweep's distribution, not a rate; the +Inf bucket is left out: scores stop "
              "at 100)." + per_number_note,
              [target(f'sum by (le) (linq_chats_by_health_score_bucket{{{NUM}, le!="+Inf"}})',
                      legend="{{le}}", fmt="heatmap")])
    d.timeseries("Mean health score per number", "Exact mean score of each number's scored "
                 "chats, from the histogram's sum and count (linq_chats_by_health_score_sum / "
                 "_count): cheap over long ranges at any number of chats. Red below 30, amber "
                 "below 60." + per_number_note,
                 [target(f"sum by (phone_number) (linq_chats_by_health_score_sum{{{NUM}}}) / "
                         f"(sum by (phone_number) (linq_chats_by_health_score_count{{{NUM}}}) > 0)",
                         legend="{{phone_number}}")],
                 unit="none", min_=0, max_=100, thresholds=SCORE_THRESHOLDS,
                 threshold_style="area", decimals=1)

    d.row("Chats needing attention")
    table_hide = {"Time": True, "job": True, "__name__": True}
    archived_note = (" Archived is true, false, or unknown when the API omitted the deprecated "
                     "is_archived field.")
    d.table("Lowest-scoring chats", "The 25 scored chats with the lowest Linq health score, "
            "with their service and flags. Red below 30, amber below 60." + archived_note,
            [target(f"bottomk(25, linq_chat_health_score{{{NUM}}} * {CHAT_JOIN} "
                    f"group_left (service, is_group, is_archived) linq_chat_info{{{SVC}}})",
                    instant=True, fmt="table")],
            overrides=[{
                "matcher": {"id": "byName", "options": "Score"},
                "properties": [
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {"id": "thresholds", "value": SCORE_THRESHOLDS},
                    {"id": "unit", "value": "none"},
                ],
            }],
            transformations=[{"id": "organize", "options": {
                "excludeByName": table_hide,
                "indexByName": {"chat_id": 0, "phone_number": 1, "service": 2, "is_group": 3,
                                "is_archived": 4, "Value": 5, "instance": 6},
                "renameByName": {"Value": "Score", "chat_id": "Chat", "phone_number": "Number",
                                 "service": "Service", "is_group": "Group",
                                 "is_archived": "Archived", "instance": "Exporter"},
            }}],
            sort_by=[{"desc": False, "displayName": "Score"}])
    d.table("CRITICAL and AT_RISK chats", "Up to 100 chats whose Linq health status is CRITICAL "
            "or AT_RISK, lowest score first; chats that carry a status but no score come first, "
            "shown as 'no score'." + archived_note,
            [target(f"bottomk(100, ((linq_chat_health_score{{{NUM}}} * {CHAT_JOIN} group_left "
                    f'(status) linq_chat_health_status{{{NUM}, status=~"CRITICAL|AT_RISK"}}) '
                    f"or {CHAT_JOIN} (-1 * linq_chat_health_status{{{NUM}, "
                    f'status=~"CRITICAL|AT_RISK"}})) * {CHAT_JOIN} group_left (service, '
                    f"is_group, is_archived) linq_chat_info{{{SVC}}})", instant=True,
                    fmt="table")],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Score"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": SCORE_THRESHOLDS},
                        {"id": "unit", "value": "none"},
                        {"id": "mappings", "value": [{
                            "options": {"-1": {"color": "transparent", "index": 0,
                                               "text": "no score"}},
                            "type": "value"}]},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "Status"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                        {"id": "mappings", "value": [{
                            "options": {
                                "CRITICAL": {"color": "red", "index": 0},
                                "AT_RISK": {"color": "orange", "index": 1},
                            },
                            "type": "value"}]},
                    ],
                },
            ],
            transformations=[{"id": "organize", "options": {
                "excludeByName": table_hide,
                "indexByName": {"chat_id": 0, "phone_number": 1, "status": 2, "Value": 3,
                                "service": 4, "is_group": 5, "is_archived": 6, "instance": 7},
                "renameByName": {"Value": "Score", "chat_id": "Chat", "phone_number": "Number",
                                 "status": "Status", "service": "Service", "is_group": "Group",
                                 "is_archived": "Archived", "instance": "Exporter"},
            }}],
            sort_by=[{"desc": False, "displayName": "Score"}])
    d.table("Longest CRITICAL chats", "The 50 CRITICAL chats that have been CRITICAL longest: "
            "time since Linq last changed the chat's health (health_status.updated_at, from "
            "linq_chat_health_updated_timestamp_seconds). Amber under a day, red from a day. "
            "Chats Linq sends no update time for are not listed." + archived_note,
            [target(f"topk(50, (time() - (linq_chat_health_updated_timestamp_seconds{{{NUM}}} "
                    f'and {CHAT_JOIN} linq_chat_health_status{{{NUM}, status="CRITICAL"}})) '
                    f"* {CHAT_JOIN} group_left (service, is_group, is_archived) "
                    f"linq_chat_info{{{SVC}}})", instant=True, fmt="table")],
            w=24, h=8, pid=31,
            overrides=[{
                "matcher": {"id": "byName", "options": "CRITICAL for"},
                "properties": [
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {"id": "thresholds",
                     "value": steps(("orange", None), ("red", 86400))},
                    {"id": "unit", "value": "s"},
                ],
            }],
            transformations=[{"id": "organize", "options": {
                "excludeByName": table_hide,
                "indexByName": {"chat_id": 0, "phone_number": 1, "Value": 2, "service": 3,
                                "is_group": 4, "is_archived": 5, "instance": 6},
                "renameByName": {"Value": "CRITICAL for", "chat_id": "Chat",
                                 "phone_number": "Number", "service": "Service",
                                 "is_group": "Group", "is_archived": "Archived",
                                 "instance": "Exporter"},
            }}],
            sort_by=[{"desc": True, "displayName": "CRITICAL for"}])

    d.row("Chats and participants")
    d.timeseries("Chats by service over time", "Chats per service over time.",
                 [target(f"sum by (service) (linq_chats{{{SVC}}})", legend="{{service}}")],
                 w=8, stack=True)
    d.timeseries("Chats by type over time", "Direct and group chats, active and archived, over "
                 "time. archived=unknown: chats whose page omitted the deprecated is_archived "
                 "field (all of them once Linq removes it), shown as their own series.",
                 [target(f'sum by (is_group, is_archived) (linq_chats{{{SVC}}})',
                         legend="group={{is_group}} archived={{is_archived}}")], w=8, stack=True)
    d.timeseries("Participants by status over time", "Participants (handles other than the business "
                 "number, across all chats) by status: active, left, removed, unknown.",
                 [target(f"sum by (status) (linq_chat_participants{{{SVC}}})",
                         legend="{{status}}")],
                 w=8, stack=True, overrides=[color_override("active", "green"),
                                             color_override("left", "orange"),
                                             color_override("removed", "red"),
                                             color_override("unknown", "text")])

    d.row("Per number")
    per_number = [
        ("I", line_type_code(NUM), "Line type"),
        ("A", f"sum by (phone_number) (linq_chats{{{SVC}}})", "Chats"),
        ("B", f'sum by (phone_number) (linq_chats{{{SVC}, is_archived="true"}}) or '
              f"0 * sum by (phone_number) (linq_chats{{{SVC}}})", "Archived"),
        ("J", f'sum by (phone_number) (linq_chats{{{SVC}, is_archived="unknown"}}) or '
              f"0 * sum by (phone_number) (linq_chats{{{SVC}}})", "Archived unknown"),
        ("C", f'sum by (phone_number) (linq_chats{{{SVC}, is_group="true"}}) or '
              f"0 * sum by (phone_number) (linq_chats{{{SVC}}})", "Group"),
        ("D", f'sum by (phone_number) (linq_chats_by_health_status{{{NUM}, '
              f'status="CRITICAL"}})', "CRITICAL"),
        ("E", f'sum by (phone_number) (linq_chats_by_health_status{{{NUM}, '
              f'status="AT_RISK"}})', "AT_RISK"),
        ("F", f"avg by (phone_number) (linq_chat_health_score{{{NUM}}} * {CHAT_JOIN} "
              f"linq_chat_info{{{SVC}}})", "Mean score"),
        ("G", f'sum by (phone_number) (linq_chat_participants{{{SVC}, status="active"}})',
         "Active participants"),
        ("H", reputation_code(NUM), "Reputation"),
    ]
    d.table("Per-number summary", "One row per Linq number: its line type (iMessage or RCS, "
            "from linq_phone_number_info; 'other' for a newer type), chats, archived chats and "
            "chats whose archived state is unknown (the API omitted the deprecated is_archived "
            "field), group chats, CRITICAL and AT_RISK chats (all services), mean health score, "
            "active participants and the line's reputation.",
            [target(expr, ref=ref, instant=True, fmt="table") for ref, expr, _ in per_number],
            w=24, h=7,
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Mean score"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": SCORE_THRESHOLDS},
                        {"id": "decimals", "value": 1},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "CRITICAL"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                        {"id": "thresholds", "value": steps(("green", None), ("red", 1))},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "Reputation"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                        {"id": "mappings", "value": REPUTATION_MAPPINGS},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "Line type"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                        {"id": "mappings", "value": LINE_TYPE_MAPPINGS},
                    ],
                },
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {"phone_number": 0, **{f"Value #{ref}": i + 1
                                                          for i, (ref, _, _) in
                                                          enumerate(per_number)}},
                    "renameByName": {"phone_number": "Number",
                                     **{f"Value #{ref}": name for ref, _, name in per_number}},
                }},
            ],
            sort_by=[{"desc": True, "displayName": "Chats"}])
    d.timeseries("Chats per number", "Chats per Linq number over time.",
                 [target(f"sum by (phone_number) (linq_chats{{{SVC}}})",
                         legend="{{phone_number}}")])
    d.timeseries("CRITICAL chats per number", "CRITICAL chats per Linq number over time."
                 + per_number_note,
                 [target(f'sum by (phone_number) (linq_chats_by_health_status{{{NUM}, '
                         f'status="CRITICAL"}})', legend="{{phone_number}}")])

    return dashboard_json(
        "linq-chats", "Linq / Chat health",
        "Health of Linq (iMessage, SMS, RCS) business conversations from linq-exporter: chats, "
        "health status and score, the chats that need attention, participants, per number.",
        ["linq", "linq-exporter", "chat-health"], d)


# ------------------------------------------------------------------------------------------------
# linq-exporter.json
# ------------------------------------------------------------------------------------------------

def exporter_dashboard():
    d = Dashboard()
    rate = "$__rate_interval"

    d.row("Status")
    d.stat("Sweeps OK", "linq_up: UP when the exporter's last sweep of the Linq API completed.",
           [target(f"linq_up{{{EXP}}}", legend="{{instance}}")],
           mappings=[{"options": {"0": {"color": "red", "index": 0, "text": "DOWN"},
                                  "1": {"color": "green", "index": 1, "text": "UP"}},
                      "type": "value"}],
           thresholds=steps(("red", None), ("green", 1)), graph=False, color_mode="background")
    d.stat("Scrape", "Prometheus' up: whether the exporter answers scrapes.",
           [target(f"up{{{EXP}}}", legend="{{instance}}")],
           mappings=[{"options": {"0": {"color": "red", "index": 0, "text": "DOWN"},
                                  "1": {"color": "green", "index": 1, "text": "UP"}},
                      "type": "value"}],
           thresholds=steps(("red", None), ("green", 1)), graph=False, color_mode="background")
    d.stat("Since last good sweep", "Time since the last complete sweep. Normally below the "
           "poll interval plus one sweep's duration; LinqExporterDataStale fires past 3 poll "
           "intervals. The colours assume the default 60 s interval (amber from 2, red from 3 "
           "intervals).",
           [target(f"time() - linq_poll_last_success_timestamp_seconds{{{EXP}}}",
                   legend="{{instance}}")],
           unit="s", thresholds=steps(("green", None), ("orange", 120), ("red", 180)))
    d.stat("Last sweep duration", "How long the last sweep (every page of every walk) took.",
           [target(f"linq_poll_duration_seconds{{{EXP}}}", legend="{{instance}}")], unit="s",
           thresholds=steps(("green", None), ("orange", 30), ("red", 60)))
    d.stat("Uptime", "Time since the exporter process started.",
           [target(f"time() - process_start_time_seconds{{{EXP}}}", legend="{{instance}}")],
           unit="s", graph=False)
    d.stat("Version", "linq_exporter_build_info: version and git revision.",
           [target(f"linq_exporter_build_info{{{EXP}}}",
                   legend="{{version}} ({{revision}})", instant=True)],
           text_mode="name", graph=False, color_mode="none")

    d.stat("Chats in snapshot", "Chats in the served snapshot, for the selected numbers and "
           "services.", [target(f"sum(linq_chats{{{SVC}}})")], w=4)
    d.stat("Sweep success ratio", "Share of sweeps that completed over the dashboard's time "
           "range.",
           [target(f'sum(increase(linq_polls_total{{{EXP}, result="success"}}[$__range])) / '
                   f"sum(increase(linq_polls_total{{{EXP}}}[$__range]))", instant=True)],
           w=4, unit="percentunit", graph=False, decimals=1,
           thresholds=steps(("red", None), ("orange", 0.9), ("green", 0.99)))
    d.stat("Series rendered", "Series in the last /metrics render (linq_exporter_series).",
           [target(f"sum(linq_exporter_series{{{EXP}}})")], w=4)
    d.stat("Chat series dropped", "Chats left without per-chat series by the "
           "--linq.max-chat-series cap (aggregates still count them).",
           [target(f"sum(linq_exporter_chat_series_dropped{{{EXP}}})")], w=4,
           thresholds=steps(("green", None), ("orange", 1)))
    d.stat("Poll interval", "The configured time between sweeps (--linq.poll-interval, "
           "linq_poll_interval_seconds).",
           [target(f"linq_poll_interval_seconds{{{EXP}}}", legend="{{instance}}")],
           w=4, unit="s", graph=False, color_mode="none", pid=31)
    d.stat("Pages per sweep", "Pages of chats the last complete sweep fetched "
           "(linq_poll_pages), about chats / --linq.page-size. Grows with the account, and "
           "with it the sweep's duration.",
           [target(f"linq_poll_pages{{{EXP}}}", legend="{{instance}}")], w=4, pid=32)
    d.stat("Shards reporting", "Distinct shards that report (linq_exporter_shard_info), per "
           "shard count: 1 of 1 for an unsharded exporter. Fewer than the total means a shard's "
           "numbers are not monitored; LinqExporterShardMissing fires after 10 minutes. Sums "
           "across shards never count a chat or a line twice: each number is exported by the "
           "one shard that owns it.",
           [target(f"count by (total_shards) (count by (total_shards, shard) "
                   f"(linq_exporter_shard_info{{{EXP}}}))", legend="of {{total_shards}}")],
           w=4, graph=False, pid=45)

    d.row("Sweeps")
    d.timeseries("Sweeps by result", "Sweeps per minute, by result.",
                 [target(f"sum by (result) (60 * rate(linq_polls_total{{{EXP}}}[{rate}]))",
                         legend="{{result}}")],
                 w=8, unit="opm", overrides=[color_override("success", "green"),
                                             color_override("failure", "red")])
    d.timeseries("Failed sweeps by cause", "Failed sweeps per minute by why they failed: http, "
                 "timeout, connect, decode, too_large, pagination, key_file.",
                 [target(f"sum by (kind) (60 * rate(linq_poll_failures_total{{{EXP}}}[{rate}]))",
                         legend="{{kind}}")], w=8, unit="opm")
    d.timeseries("Sweep duration", "Duration of the last sweep, per exporter, and the poll "
                 "interval (dashed) it should stay below. Sweeps never overlap: a longer sweep "
                 "delays the next, so the data is refreshed once per sweep instead.",
                 [target(f"linq_poll_duration_seconds{{{EXP}}}", legend="{{instance}}"),
                  target(f"linq_poll_interval_seconds{{{EXP}}}", ref="B",
                         legend="poll interval {{instance}}")],
                 w=8, unit="s", overrides=[dashed_override("B")])
    d.timeseries("Sweeps OK over time", "linq_up over time: 1 while the last sweep completed.",
                 [target(f"linq_up{{{EXP}}}", legend="{{instance}}")], w=8, unit="none",
                 max_=1, interpolation="stepAfter")
    d.timeseries("Time since last good sweep", "Age of the served snapshot, and (dashed) 3 times "
                 "the longer of the poll interval and the last sweep's duration: "
                 "LinqExporterDataStale fires when the age stays above it for 5 minutes.",
                 [target(f"time() - linq_poll_last_success_timestamp_seconds{{{EXP}}}",
                         legend="{{instance}}"),
                  target(f"3 * (linq_poll_duration_seconds{{{EXP}}} > "
                         f"linq_poll_interval_seconds{{{EXP}}} or "
                         f"linq_poll_interval_seconds{{{EXP}}})", ref="B",
                         legend="stale after {{instance}}")],
                 w=8, unit="s", overrides=[dashed_override("B", "red")])
    d.timeseries("Series", "Series in each /metrics render, and chats whose per-chat series the "
                 "--linq.max-chat-series cap dropped.",
                 [target(f"linq_exporter_series{{{EXP}}}", legend="series {{instance}}"),
                  target(f"linq_exporter_chat_series_dropped{{{EXP}}}", ref="B",
                         legend="dropped chats {{instance}}")], w=8)

    d.row("Linq API")
    d.timeseries("Requests by status code", "HTTP responses from the Linq API per second, by "
                 "endpoint and status code.",
                 [target(f"sum by (endpoint, status_code) "
                         f"(rate(linq_api_requests_total{{{EXP}}}[{rate}]))",
                         legend="{{endpoint}} {{status_code}}")], unit="reqps")
    d.timeseries("Errors by kind", "Failed requests per second by kind: http (4xx/5xx), "
                 "timeout, connect, decode (unexpected body), pagination (cursor loop).",
                 [target(f"sum by (endpoint, kind) (rate(linq_api_errors_total{{{EXP}}}[{rate}]))",
                         legend="{{endpoint}} {{kind}}")], unit="reqps")
    d.timeseries("Errors by Linq error code", "Errors per second that carried a Linq error code "
                 "in the body, by HTTP status and code (e.g. 2004 unauthorized). 401/403 fire "
                 "LinqApiUnauthorized.",
                 [target(f'sum by (status_code, error_code) (rate(linq_api_errors_total{{{EXP}, '
                         f'error_code!=""}}[{rate}]))',
                         legend="{{status_code}} code {{error_code}}")], w=8, unit="reqps")
    d.timeseries("Error ratio", "Failed requests as a share of responses, per endpoint. "
                 "LinqApiErrorRateHigh fires above 10% (10-minute rate) for 15 minutes.",
                 [target(f"sum by (endpoint) (rate(linq_api_errors_total{{{EXP}}}[{rate}])) / "
                         f"sum by (endpoint) (rate(linq_api_requests_total{{{EXP}}}[{rate}]))",
                         legend="{{endpoint}}")],
                 w=8, unit="percentunit", thresholds=steps(("green", None), ("red", 0.1)),
                 threshold_style="line")
    d.timeseries("Retries", "Requests retried per second (408, 409, 429, 5xx, timeouts, "
                 "connection errors), by endpoint.",
                 [target(f"sum by (endpoint) (rate(linq_api_retries_total{{{EXP}}}[{rate}]))",
                         legend="{{endpoint}}")], w=8, unit="reqps")
    d.timeseries("Request latency", "Linq API request latency percentiles from the "
                 "linq_api_request_duration_seconds histogram, by endpoint.",
                 [target(f"histogram_quantile({q}, sum by (endpoint, le) "
                         f"(rate(linq_api_request_duration_seconds_bucket{{{EXP}}}[{rate}])))",
                         ref=ref, legend=f"p{int(q * 100)} {{{{endpoint}}}}")
                  for ref, q in (("A", 0.5), ("B", 0.95), ("C", 0.99))], unit="s")
    d.timeseries("Mean latency and request rate", "Mean request latency by endpoint (left) and "
                 "timed requests per second (right).",
                 [target(f"sum by (endpoint) (rate(linq_api_request_duration_seconds_sum{{{EXP}}}"
                         f"[{rate}])) / sum by (endpoint) "
                         f"(rate(linq_api_request_duration_seconds_count{{{EXP}}}[{rate}]))",
                         legend="mean {{endpoint}}"),
                  target(f"sum by (endpoint) (rate(linq_api_request_duration_seconds_count"
                         f"{{{EXP}}}[{rate}]))", ref="B", legend="requests {{endpoint}}")],
                 unit="s", overrides=[{
                     "matcher": {"id": "byFrameRefID", "options": "B"},
                     "properties": [{"id": "unit", "value": "reqps"},
                                    {"id": "custom.axisPlacement", "value": "right"}],
                 }])

    # Added after the first release: explicit ids above the highest existing one (32).
    receiver_note = (" Empty while the webhook receiver is off (--webhook.listen-address, see "
                     "docs/webhooks.md).")
    d.row("Webhook receiver", pid=33)
    d.timeseries("Webhook events by type", "Verified webhook events per second by Linq event "
                 "type (linq_webhook_events_total), each event id counted once however often "
                 "Linq retries it." + receiver_note,
                 [target(f"sum by (event_type) (rate(linq_webhook_events_total{{{EXP}}}"
                         f"[{rate}]))", legend="{{event_type}}")],
                 w=8, unit="cps", pid=34)
    d.timeseries("Webhook rejections by reason", "Webhook requests refused or ignored per "
                 "second, by reason: signature (401, missing or wrong signature: a wrong "
                 "secret, or forged requests), timestamp (401, older or newer than "
                 "--webhook.max-age), duplicate (answered 2xx, not counted again: Linq's "
                 "retries), malformed (400, signed but not a JSON envelope), too_large (413, over "
                 "1 MiB), timeout (408, body not received in time). LinqWebhookSignatureFailures fires after 10 minutes of signature "
                 "rejections." + receiver_note,
                 [target(f"sum by (reason) (rate(linq_webhook_rejected_total{{{EXP}}}[{rate}]))",
                         legend="{{reason}}")],
                 w=8, unit="reqps", pid=35,
                 overrides=[color_override("signature", "red"),
                            color_override("timestamp", "orange"),
                            color_override("duplicate", "text"),
                            color_override("malformed", "purple"),
                            color_override("too_large", "yellow"),
                            color_override("timeout", "blue")])
    d.timeseries("Time since last webhook event", "Time since each receiver last verified an "
                 "event (linq_webhook_last_event_timestamp_seconds; no value before the first "
                 "event after a start). LinqWebhooksSilent fires above an hour (red line)."
                 + receiver_note,
                 [target(f"time() - (linq_webhook_last_event_timestamp_seconds{{{EXP}}} > 0)",
                         legend="{{instance}}")],
                 w=5, unit="s", thresholds=steps(("green", None), ("red", 3600)),
                 threshold_style="line", pid=36)
    d.stat("Capped and forgotten", "Over the dashboard's time range: label values of the "
           "webhook metrics replaced by 'other' because a cardinality cap was hit (capped, "
           "linq_webhook_labels_capped_total; its label says which), and event ids the "
           "duplicate filter forgot before their 35 minutes to stay within its memory bound "
           "(forgotten, linq_webhook_dedupe_evictions_total; a retry of one would be counted "
           "twice). Both stay 0 normally." + receiver_note,
           [target(f"sum(increase(linq_webhook_labels_capped_total{{{EXP}}}[$__range])) "
                   f"or 0 * sum(linq_webhook_last_event_timestamp_seconds{{{EXP}}})",
                   legend="capped", instant=True),
            target(f"sum(increase(linq_webhook_dedupe_evictions_total{{{EXP}}}[$__range])) "
                   f"or 0 * sum(linq_webhook_last_event_timestamp_seconds{{{EXP}}})",
                   legend="forgotten", ref="B", instant=True)],
           w=3, h=8, graph=False, pid=37,
           thresholds=steps(("green", None), ("orange", 1)))
    # Added with issue 18: ids above the highest existing one (37).
    d.timeseries("Webhook delivery lag p90", "90th percentile, per Linq event type, of the "
                 "time from an event's creation at Linq (the envelope's created_at) to its "
                 "receipt here (linq_webhook_delivery_lag_seconds): how late Linq's webhooks "
                 "arrive, retries included. Clock skew between Linq and this host shifts it; a "
                 "negative lag is not observed (Timestamps not observed, reason negative). Works "
                 "with the classic buckets and with a native histogram alike." + receiver_note,
                 [target(quantile(0.9, "linq_webhook_delivery_lag_seconds", "event_type", EXP,
                                  rate), legend="{{event_type}}")],
                 unit="s", pid=38)
    d.timeseries("Timestamps not observed", "Timestamps per second that a latency histogram "
                 "could not observe (linq_webhook_timestamps_unobserved_total), by histogram "
                 "(delivery: delivered_at - sent_at, read: read_at - delivered_at, lag: receipt "
                 "- created_at) and reason: missing (the event lacks the field), invalid (not a "
                 "timestamp), negative (the later time is before the earlier one: clock skew "
                 "or out-of-order data). A steady share of negative means the latency panels "
                 "are biased." + receiver_note,
                 [target(f"sum by (histogram, reason) "
                         f"(rate(linq_webhook_timestamps_unobserved_total{{{EXP}}}[{rate}]))",
                         legend="{{histogram}} {{reason}}")],
                 unit="cps", pid=39)

    d.row("Process")
    d.timeseries("Memory", "Resident and virtual memory of the exporter process.",
                 [target(f"process_resident_memory_bytes{{{EXP}}}", legend="resident {{instance}}"),
                  target(f"process_virtual_memory_bytes{{{EXP}}}", ref="B",
                         legend="virtual {{instance}}")], w=8, unit="bytes")
    d.timeseries("CPU", "CPU used by the exporter process (100% = one core).",
                 [target(f"rate(process_cpu_seconds_total{{{EXP}}}[{rate}])",
                         legend="{{instance}}")], w=8, unit="percentunit")
    d.timeseries("File descriptors", "Open file descriptors (left) and their share of the limit "
                 "process_max_fds (right).",
                 [target(f"process_open_fds{{{EXP}}}", legend="open {{instance}}"),
                  target(f"process_open_fds{{{EXP}}} / process_max_fds{{{EXP}}}", ref="B",
                         legend="used {{instance}}")],
                 w=8, overrides=[{
                     "matcher": {"id": "byFrameRefID", "options": "B"},
                     "properties": [{"id": "unit", "value": "percentunit"},
                                    {"id": "custom.axisPlacement", "value": "right"}],
                 }])

    return dashboard_json(
        "linq-exporter", "Linq / Exporter",
        "Health of linq-exporter itself: sweeps of the Linq API, API requests, errors, latency "
        "and retries, and the exporter process.",
        ["linq", "linq-exporter", "exporter"], d, refresh="30s", time_from="now-3h")


# ------------------------------------------------------------------------------------------------
# Grafana-managed alert rules, from deploy/prometheus/alerts.yaml
# ------------------------------------------------------------------------------------------------

def grafana_threshold(alertname, op, number):
    """Map a Prometheus comparison to a Grafana threshold expression (gt / lt)."""
    value = float(number)
    if op == ">":
        return "gt", value
    if op == "<":
        return "lt", value
    if op == "==" and value == 0:
        return "lt", 1.0  # our == 0 rules are over 0/1 gauges (up, linq_up)
    if op == "==" and value == 1:
        return "gt", 0.0  # linq_chat_health_status is 1 or absent
    raise SystemExit(f"{alertname}: no Grafana threshold for '{op} {number}'")


# Alerts whose expression compares two series ("<query> > 3 * <other query>") have no number to
# restate as Grafana's threshold. Prometheus already returns only the breaching series, valued as the
# left-hand side; the threshold below must hold for every value that side can then have.
VECTOR_COMPARISON_THRESHOLDS = {
    # The age of the data in seconds, beyond 3 poll intervals: always > 0.
    "LinqExporterDataStale": ("gt", 0.0),
}


def grafana_template(text):
    # In Grafana templates $value is every expression's value; the reduced query value is B.
    return text.replace("$value", "$values.B.Value")


def grafana_uid(alertname):
    out = []
    for i, c in enumerate(alertname):
        if c.isupper() and i:
            out.append("-")
        out.append(c.lower())
    return "".join(out)[:40]


def grafana_alerts():
    with open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")) as f:
        prom = yaml.safe_load(f)
    groups = []
    for group in prom["groups"]:
        rules = []
        for rule in group["rules"]:
            name = rule["alert"]
            expr = rule["expr"].strip()
            # Query A is the Prometheus expression itself, comparison included: Prometheus does
            # the filtering, so Grafana receives only the breaching series (one per low-scoring
            # chat, not 100k), exactly as Prometheus would alert. B takes each series' value and
            # the threshold C restates the comparison for Grafana's UI.
            query = expr
            if promql.unwrap_absent(expr) is not None:
                kind, value = "gt", 0.0
            else:
                split = promql.split_final_comparison(expr)
                if split is not None:
                    _lhs, op, number = split
                    kind, value = grafana_threshold(name, op, number)
                elif name in VECTOR_COMPARISON_THRESHOLDS:
                    if promql.split_final_comparison(expr, vector_rhs=True) is None:
                        raise SystemExit(f"{name}: expression does not end in a comparison")
                    kind, value = VECTOR_COMPARISON_THRESHOLDS[name]
                else:
                    raise SystemExit(f"{name}: expression does not end in a comparison with a "
                                     "number (add it to VECTOR_COMPARISON_THRESHOLDS?)")
            # One line: Grafana's query editor shows it as such (no string literal in our rules
            # holds repeated whitespace, so this does not change the query).
            query = re.sub(r"\s+", " ", query)
            query = re.sub(r"\(\s+", "(", query)
            query = re.sub(r"\s+\)", ")", query)
            value = int(value) if value == int(value) else value
            rules.append({
                "uid": grafana_uid(name),
                "title": name,
                "condition": "C",
                "data": [
                    {
                        "refId": "A",
                        "relativeTimeRange": {"from": 600, "to": 0},
                        "datasourceUid": ALERT_DATASOURCE_UID,
                        "model": {
                            "datasource": {"type": "prometheus", "uid": ALERT_DATASOURCE_UID},
                            "editorMode": "code",
                            "expr": query,
                            "instant": True,
                            "intervalMs": 1000,
                            "legendFormat": "__auto",
                            "maxDataPoints": 43200,
                            "range": False,
                            "refId": "A",
                        },
                    },
                    {
                        "refId": "B",
                        "relativeTimeRange": {"from": 0, "to": 0},
                        "datasourceUid": "__expr__",
                        "model": {
                            "datasource": {"type": "__expr__", "uid": "__expr__"},
                            "expression": "A",
                            "intervalMs": 1000,
                            "maxDataPoints": 43200,
                            "reducer": "last",
                            "settings": {"mode": "dropNN"},
                            "refId": "B",
                            "type": "reduce",
                        },
                    },
                    {
                        "refId": "C",
                        "relativeTimeRange": {"from": 0, "to": 0},
                        "datasourceUid": "__expr__",
                        "model": {
                            "conditions": [{
                                "evaluator": {"params": [value], "type": kind},
                                "operator": {"type": "and"},
                                "query": {"params": ["C"]},
                                "reducer": {"params": [], "type": "last"},
                                "type": "query",
                            }],
                            "datasource": {"type": "__expr__", "uid": "__expr__"},
                            "expression": "B",
                            "intervalMs": 1000,
                            "maxDataPoints": 43200,
                            "refId": "C",
                            "type": "threshold",
                        },
                    },
                ],
                # No data means nothing breaches (as for Prometheus); the absence of the exporter
                # itself is LinqExporterAbsent's job.
                "noDataState": "OK",
                "execErrState": "Error",
                "for": rule.get("for", "0m"),
                "annotations": {k: grafana_template(v)
                                for k, v in rule.get("annotations", {}).items()},
                "labels": dict(rule.get("labels", {})),
                "isPaused": False,
            })
        groups.append({
            "orgId": 1,
            "name": group["name"],
            "folder": ALERT_FOLDER,
            "interval": "1m",
            "rules": rules,
        })
    return {"apiVersion": 1, "groups": groups}


GRAFANA_ALERTS_HEADER = """\
# Grafana-managed alert rules for linq-exporter (Grafana alerting file provisioning).
#
# GENERATED from deploy/prometheus/alerts.yaml by scripts/dashboards/generate.py: the same alerts,
# expressions, thresholds, durations, labels and annotations. Do not edit by hand; edit the
# Prometheus rules (or the generator) and re-run it.
#
# Each rule: A runs the Prometheus alert expression (so Prometheus returns only the breaching
# series), B reduces each series to its last value, C is the threshold (the same comparison).
# Annotations use $values.B.Value where the Prometheus rules use $value.
#
# Copy into Grafana's provisioning/alerting/ directory. Each rule queries the Prometheus data source
# with uid "{uid}" (provisioned by ../datasources/prometheus.yaml). If yours has another uid:
#   sed -i 's/\\([uU]id\\): {uid}$/\\1: <your-uid>/' linq-alerts.yaml
# Rules go to the folder "{folder}"; notifications follow your Grafana notification policies (route
# on the severity label).
"""


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper, data):
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def render_outputs():
    out = {}
    for name, dash in (("linq-chats.json", chats_dashboard()),
                       ("linq-exporter.json", exporter_dashboard())):
        out[os.path.join("dashboards", name)] = json.dumps(dash, indent=2,
                                                           ensure_ascii=False) + "\n"
    alerts = grafana_alerts()
    out[os.path.join("dashboards", "provisioning", "alerting", "linq-alerts.yaml")] = (
        GRAFANA_ALERTS_HEADER.format(uid=ALERT_DATASOURCE_UID, folder=ALERT_FOLDER)
        + yaml.dump(alerts, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)
    )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="fail when a committed file differs from the generated one")
    args = ap.parse_args()
    stale = []
    for rel, content in render_outputs().items():
        path = os.path.join(ROOT, rel)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if args.check:
            if current != content:
                stale.append(rel)
            continue
        if current != content:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)
            print(f"wrote {rel}")
    if stale:
        print("out of date (run python3 scripts/dashboards/generate.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
