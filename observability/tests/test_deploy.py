"""deploy/: the compose profile `observability` (Prometheus, Grafana, an OpenTelemetry Collector), the scrape
config, and a provisioned Grafana dashboard that charts every series Conduit exports."""

from __future__ import annotations

import json
import re

import yaml
from django.conf import settings

DEPLOY = settings.BASE_DIR / "deploy"
SERIES = (
    "conduit_http_requests_total", "conduit_http_request_duration_seconds", "conduit_turns_total",
    "conduit_turn_duration_seconds", "conduit_turn_first_token_seconds", "conduit_turns_running",
    "conduit_model_calls_total", "conduit_model_tokens_total", "conduit_model_cost_total", "conduit_tool_calls_total",
    "conduit_tool_call_duration_seconds", "conduit_budget_refusals_total", "conduit_websocket_connections",
    "conduit_orgproxy_upstream_requests_total",
)  # fmt: skip


def test_the_observability_profile_starts_prometheus_grafana_and_a_collector_beside_the_app():
    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana", "otel-collector"):
        assert services[name]["profiles"] == ["observability"], name
    assert not any("profiles" in services[name] for name in ("app1", "app2", "proxy", "db", "redis", "migrate"))
    env = services["app1"]["environment"]
    assert {"METRICS_TOKEN", "OTEL_EXPORTER_OTLP_ENDPOINT", "LOG_FORMAT"} <= set(env)
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    assert services["prometheus"]["configs"] == [{"source": "metrics_token", "target": "/etc/prometheus/metrics_token"}]
    assert compose["configs"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    assert "./deploy/otel-collector.yaml:/etc/otelcol/config.yaml:ro" in services["otel-collector"]["volumes"]
    grafana_volumes = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_volumes
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana_volumes


def test_prometheus_scrapes_each_replica_with_the_token_and_the_proxy_hides_metrics():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/etc/prometheus/metrics_token"}
    assert job["static_configs"] == [{"targets": ["app1:8000", "app2:8000"]}]
    assert re.search(r"location = /metrics \{\s*return 404;", (DEPLOY / "nginx.conf").read_text())


def test_the_collector_takes_otlp_over_http_into_a_traces_pipeline():
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"] and set(pipeline["exporters"]) <= set(config["exporters"])


def test_grafana_provisions_the_dashboard_on_prometheus_and_it_charts_every_series():
    [source] = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert (source["uid"], source["url"]) == ("prometheus", "http://prometheus:9090")
    [provider] = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/conduit.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((DEPLOY / "grafana/dashboards/conduit.json").read_text())
    expressions = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for series in SERIES:
        assert series in expressions, series
    assert all(panel["datasource"]["uid"] == "prometheus" for panel in dashboard["panels"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
