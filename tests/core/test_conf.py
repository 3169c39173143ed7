import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.conf import ConfigError, Env, parse_database_url

pytestmark = pytest.mark.embedded
ROOT = Path(__file__).resolve().parents[2]


def test_env_collects_one_line_per_bad_variable():
    env = Env({"FLEET_DEBUG": "maybe", "FLEET_MAX": "-4", "DATABASE_URL": "mysql://x/y"})
    env.bool("FLEET_DEBUG")
    env.int("FLEET_MAX", 10, minimum=1)
    env.database("DATABASE_URL", Path("/tmp/x.sqlite3"))
    with pytest.raises(ConfigError) as info:
        env.check()
    lines = info.value.lines
    assert len(lines) == 3
    assert lines[0].startswith("FLEET_DEBUG='maybe': expected one of true/false")
    assert "must be at least 1" in lines[1]
    assert "unsupported scheme 'mysql'" in lines[2]


def test_database_urls():
    pg = parse_database_url("postgres://fleet:s%40cret@db.example:5433/fleet?sslmode=require")
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql", "fleet", "fleet", "s@cret", "db.example", "5433")
    assert pg["OPTIONS"] == {"sslmode": "require"}
    lite = parse_database_url("sqlite:////var/lib/fleet/db.sqlite3")
    assert lite["NAME"] == "/var/lib/fleet/db.sqlite3"
    assert parse_database_url("sqlite:///var/db.sqlite3")["NAME"] == str(Path("var/db.sqlite3").resolve())
    with pytest.raises(ValueError, match="missing database name"):
        parse_database_url("postgres://host/")


def test_manage_py_reports_bad_configuration_without_traceback(tmp_path):
    env = {**os.environ, "FLEET_DATA_DIR": str(tmp_path), "FLEET_DEBUG": "perhaps",
           "CELERY_BROKER_URL": "kafka://x", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "FLEET_DEBUG='perhaps'" in result.stderr
    assert "CELERY_BROKER_URL='kafka://x'" in result.stderr
    assert "DATABASE_URL" not in result.stderr  # valid variables are not reported


@pytest.mark.parametrize("value, installed", [(None, False), ("false", False), ("true", True)])
def test_dev_tools_are_installed_only_when_asked(tmp_path, value, installed):
    """Production settings leave the dev tooling (fleet.dev) and its commands out."""
    env = {key: val for key, val in os.environ.items() if key != "FLEET_DEV_TOOLS"}
    env.update({"FLEET_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
                **({"FLEET_DEV_TOOLS": value} if value is not None else {})})
    result = subprocess.run([sys.executable, "manage.py", "help", "--commands"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = set(result.stdout.split())
    assert "gitops" in commands
    assert {name in commands for name in ("localfleet", "demo", "testrepos")} == {installed}
