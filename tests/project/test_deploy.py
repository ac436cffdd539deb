"""deploy/: Prometheus' alert rules (checked and unit-tested by promtool, on the series /metrics exposes) and
Grafana's provisioning and dashboard (the format Grafana loads from files), as docker-compose.yml mounts them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from campaigns.web.metrics import SERIES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXPOSED = set(SERIES)


def promtool(*args: str) -> subprocess.CompletedProcess:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (Debian package prometheus; `make test` installs it where it may)"
        if os.environ.get("CI", "") == "true":
            pytest.fail(f"CI=true and the alert rules cannot be checked: {message}")
        pytest.skip(message)
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=120, cwd=DEPLOY / "prometheus")


def series_named(text: str) -> set[str]:
    return set(re.findall(r"\bblast_[a-z_]+", text))


def test_the_alert_rules_are_valid_and_fire_on_what_they_are_about():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0 and "SUCCESS: 6 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    config = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_alerts_and_the_dashboard_ask_only_for_series_blast_exposes():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names == {"BlastAccountBelowItsRate", "BlastQueuedMessageWaiting", "BlastUnknownSendsPilingUp",
                     "BlastCampaignPaused", "BlastThrottled", "BlastBeatNotRunning"}
    asked = series_named((DEPLOY / "prometheus" / "alerts.yml").read_text())
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "blast.json").read_text())
    asked |= series_named(" ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"]))
    assert asked <= EXPOSED, asked - EXPOSED


def test_grafana_provisions_the_data_source_and_loads_the_dashboard_from_where_compose_mounts_them():
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    providers = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "blast.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    [source] = datasources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    [provider] = providers["providers"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    # and the dashboard is in Grafana's file format: a uid, a title, panels placed on the grid, each
    # asking the provisioned data source
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "blast.json").read_text())
    assert dashboard["uid"] and dashboard["title"] == "Blast" and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"]["uid"] == source["uid"]
        assert panel["targets"] and all(target["expr"] for target in panel["targets"])
    # and Prometheus reads the rules compose mounts, from the web app compose names
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    mounted = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounted
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["web:8000"]
