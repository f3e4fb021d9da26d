"""The deployment files say what a cluster needs: Dagster's run monitoring on, a Postgres password
that comes from a Secret (never the chart's public default), and instance files Dagster accepts."""

from pathlib import Path

import yaml
from dagster import DagsterInstance
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema

REPO = Path(__file__).resolve().parents[1]


def _yaml(relative: str) -> dict:
    return yaml.safe_load((REPO / relative).read_text())


def test_the_local_instance_monitors_runs(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled


def test_the_cluster_instance_is_valid_and_monitors_runs():
    instance = _yaml("deploy/dagster.yaml")
    checked = validate_config(dagster_instance_config_schema(), instance)
    assert checked.success, checked.errors
    assert instance["run_monitoring"]["enabled"] is True


def _password_values(node, path=()) -> list[tuple]:
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in _password_values(value, (*path, key))]
    return [path] if path and "password" in str(path[-1]).lower() and "secret" not in str(path[-1]).lower() else []


def test_the_postgres_password_comes_from_one_secret_and_no_value_holds_one():
    values, instance = _yaml("deploy/helm/values.yaml"), _yaml("deploy/dagster.yaml")
    assert values["generatePostgresqlPasswordSecret"] is False
    secret = values["global"]["postgresqlSecretName"]
    assert values["postgresql"]["existingSecret"] == secret
    assert instance["run_launcher"]["config"]["postgres_password_secret"] == secret
    assert _password_values(values) == []
    assert instance["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
