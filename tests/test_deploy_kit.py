"""The deployment kit in deploy/ is valid as shipped: nginx accepts the site, the compose file has the
gateways, Redis and PostgreSQL with their settings and healthchecks, and systemd accepts the units."""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import missing_component

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SITE = DEPLOY / "nginx" / "gemproxy.conf"
COMPOSE = DEPLOY / "compose.yaml"
UNITS = DEPLOY / "systemd"
CERT_PATHS = {
    "/etc/letsencrypt/live/gemproxy.example.com/fullchain.pem": "cert.pem",
    "/etc/letsencrypt/live/gemproxy.example.com/privkey.pem": "key.pem",
}


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        missing_component("nginx is not installed (scripts/setup installs Debian's nginx)")
    assert found is not None
    return found


# The keys of a compose service this file may use (the Compose Specification has more).
COMPOSE_SERVICE_KEYS = frozenset(
    {"build", "image", "command", "environment", "volumes", "ports", "depends_on", "healthcheck", "restart",
     "profiles", "stop_grace_period"}
)  # fmt: skip


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def throwaway_certificate(directory: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=gemproxy.example.com",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def site_in(directory: Path, site: str) -> Path:
    """The site, its certificate and log paths moved into ``directory``, inside a minimal nginx.conf."""
    for path, name in CERT_PATHS.items():
        site = site.replace(path, str(directory / name))
    site = site.replace("/var/log/nginx/", f"{directory}/")
    (directory / "gemproxy.conf").write_text(site)
    main = directory / "nginx.conf"
    main.write_text(
        f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
        f"events {{}}\nhttp {{\n    include {directory}/gemproxy.conf;\n}}\n"
    )
    return main


def nginx_test(directory: Path, site: str) -> subprocess.CompletedProcess:
    main = site_in(directory, site)
    return subprocess.run([nginx_binary(), "-t", "-p", str(directory), "-c", str(main)], capture_output=True, text=True)


class TestNginxSite:
    def test_nginx_accepts_the_site(self, tmp_path: Path) -> None:
        throwaway_certificate(tmp_path)

        result = nginx_test(tmp_path, SITE.read_text())

        assert result.returncode == 0, result.stderr
        assert "syntax is ok" in result.stderr
        assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr

    def test_the_check_fails_on_a_broken_site(self, tmp_path: Path) -> None:
        """So that the test above can fail: nginx -t here really reads the site."""
        throwaway_certificate(tmp_path)

        result = nginx_test(tmp_path, SITE.read_text().replace("proxy_buffering off;", "proxy_buffering sideways;"))

        assert result.returncode != 0

    def test_the_site_terminates_tls_upgrades_websockets_and_does_not_buffer(self) -> None:
        site = SITE.read_text()

        assert re.search(r"listen 443 ssl", site)
        assert "return 301 https://" in site
        assert "proxy_set_header Upgrade $http_upgrade;" in site
        assert re.search(r"proxy_set_header Connection \$\w+;", site)
        assert "proxy_http_version 1.1;" in site
        assert "proxy_buffering off;" in site
        assert "gzip off;" in site
        assert (
            re.search(r"proxy_read_timeout (\d+)s;", site)
            and int(re.search(r"proxy_read_timeout (\d+)s;", site)[1]) >= 300
        )

    def test_the_access_log_format_leaves_out_query_strings(self) -> None:
        log_format = re.search(r"log_format gemproxy (.*?);", SITE.read_text(), re.S)

        assert log_format is not None
        assert "$request " not in log_format[1] and "$request_uri" not in log_format[1] and "$args" not in log_format[1]
        assert "$uri" in log_format[1]


class TestCompose:
    def compose(self) -> dict:
        return yaml.safe_load(COMPOSE.read_text())

    def test_the_file_is_valid_compose(self) -> None:
        """With docker compose on the machine, its own check; without it, a YAML parse of what it needs."""
        if docker_compose_available():
            env = {**os.environ, "SECRET_KEY": "x", "POSTGRES_PASSWORD": "y"}
            command = ["docker", "compose", "-f", str(COMPOSE), "config", "-q"]
            result = subprocess.run(command, capture_output=True, text=True, env=env)
            assert result.returncode == 0, result.stderr
        compose = self.compose()
        assert compose["name"] == "gemproxy"
        for name, service in compose["services"].items():
            assert "image" in service or "build" in service, name
            assert set(service) <= COMPOSE_SERVICE_KEYS, (name, set(service) - COMPOSE_SERVICE_KEYS)
        assert set(compose["volumes"]) == {"gemproxy-data", "postgres-data"}

    def test_it_runs_two_gateways_redis_and_postgresql(self) -> None:
        services = self.compose()["services"]

        gateways = [name for name in services if name.startswith("gateway-")]
        assert len(gateways) >= 2
        assert {"redis", "postgres", "migrate"} <= set(services)

    def test_every_gateway_is_distributed_on_the_shared_redis_and_postgresql(self) -> None:
        services = self.compose()["services"]

        for name in (name for name in services if name.startswith("gateway-")):
            env = services[name]["environment"]
            assert env["REDIS_URL"].startswith("redis://redis:")
            assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
            assert "SECRET_KEY" in env and ":?" in env["SECRET_KEY"]  # refuses to start without one
            # Containers do not share process ids: a shared metrics directory would mix their files.
            assert not env["GEMPROXY_METRICS_DIR"].startswith("/data")
            assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
            assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
            assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"

    def test_each_gateway_publishes_its_own_port(self) -> None:
        services = self.compose()["services"]

        ports = [services[name]["ports"][0] for name in services if name.startswith("gateway-")]
        assert len(set(ports)) == len(ports)
        assert all(port.startswith("127.0.0.1:") for port in ports)  # nginx in front, not the world

    def test_every_long_running_service_has_a_healthcheck(self) -> None:
        services = self.compose()["services"]

        assert "/readyz" in " ".join(services["gateway-1"]["healthcheck"]["test"])
        assert services["redis"]["healthcheck"]["test"][-1] == "ping"
        assert "pg_isready" in services["postgres"]["healthcheck"]["test"]

    def test_the_migration_runs_the_projects_migrate(self) -> None:
        assert self.compose()["services"]["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]

    def test_the_image_serves_the_gateway_and_checks_readiness(self) -> None:
        dockerfile = (DEPLOY / "Dockerfile").read_text()

        assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
        assert 'CMD ["python", "-m", "gemproxy_site.serve"' in dockerfile
        assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
        assert re.search(r"^USER (?!root)", dockerfile, re.M)
        assert "frontend/dist" in dockerfile


def units_in(directory: Path) -> list[Path]:
    """The units, with the python they run pointed at this checkout's, as an install would have it."""
    copies = []
    for unit in sorted(UNITS.iterdir()):
        copy = directory / unit.name
        copy.write_text(unit.read_text().replace("/opt/gemproxy/.venv/bin/python", sys.executable))
        copies.append(copy)
    return copies


class TestSystemdUnits:
    def test_systemd_accepts_the_units(self, tmp_path: Path) -> None:
        """systemd-analyze where it is installed; the parse below checks the units everywhere."""
        units_in(tmp_path)
        if shutil.which("systemd-analyze") is None:
            missing_component("systemd-analyze is not installed")
        instances = ["gemproxy@8001.service", "gemproxy-executor@ana.service", "gemproxy.target"]

        result = subprocess.run(
            ["systemd-analyze", "verify", *(str(tmp_path / name) for name in instances)], capture_output=True, text=True
        )

        assert result.returncode == 0, result.stderr
        assert "gemproxy" not in result.stdout + result.stderr  # not even a warning about our units

    def test_systemd_analyze_warns_about_a_broken_unit(self, tmp_path: Path) -> None:
        """So that the test above can fail."""
        if shutil.which("systemd-analyze") is None:
            missing_component("systemd-analyze is not installed")
        units_in(tmp_path)
        broken = tmp_path / "gemproxy@.service"
        broken.write_text(broken.read_text().replace("Restart=always", "Restart=whenever"))

        result = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / "gemproxy@8001.service")], capture_output=True, text=True
        )

        assert "gemproxy@" in result.stdout + result.stderr

    def test_every_unit_has_its_sections_and_a_command_that_exists(self) -> None:
        for unit in UNITS.iterdir():
            parser = configparser.ConfigParser(strict=True, interpolation=None)
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            parser.read_string(unit.read_text())

            assert "Unit" in parser and "Install" in parser, unit.name
            if unit.suffix == ".service":
                command = parser["Service"]["ExecStart"].split()
                assert command[0] == "/opt/gemproxy/.venv/bin/python" and command[1] == "-m", unit.name
                assert importlib.util.find_spec(command[2]) is not None, command[2]
                assert parser["Service"]["Restart"] == "always"
                assert parser["Service"]["EnvironmentFile"].startswith("/etc/gemproxy/")

    def test_the_gateway_unit_runs_one_process_per_instance_port(self) -> None:
        unit = (UNITS / "gemproxy@.service").read_text()

        assert "-p %i" in unit
        assert "--proxy-headers" in unit
        for port in re.findall(r"gemproxy@(\d+)\.service", (UNITS / "gemproxy.target").read_text()):
            assert f"127.0.0.1:{port}" in SITE.read_text()  # nginx knows each process the target starts

    def test_no_secret_is_on_a_command_line(self) -> None:
        for unit in UNITS.iterdir():
            assert not re.search(r"--token\b|--upstream-key\b|AIza|gpe_", unit.read_text()), unit.name
