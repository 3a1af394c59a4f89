"""deploy/nginx/gemproxy.conf, run by a real nginx in front of a real gateway: an executor connects over
wss:// through it, a stream arrives piece by piece (no buffering), plain HTTP is redirected to HTTPS,
a request id goes through, and nginx's log keeps no ?key=."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, free_port, wait_until
from tests.test_deploy_kit import SITE, nginx_binary

STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


class Nginx:
    def __init__(self, directory: Path, gateway_port: int) -> None:
        self.directory = directory
        self.http_port, self.https_port = free_port(), free_port()
        self.cert = directory / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(directory / "key.pem"), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        site = SITE.read_text()
        site = re.sub(r"    server 127\.0\.0\.1:\d+ [^;]*;\n", "", site)
        site = site.replace("    least_conn;\n", f"    least_conn;\n    server 127.0.0.1:{gateway_port};\n")
        site = site.replace("listen [::]:80;", "").replace("listen [::]:443 ssl http2;", "")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.http_port};")
        site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;")
        site = site.replace("/etc/letsencrypt/live/gemproxy.example.com/fullchain.pem", str(self.cert))
        site = site.replace("/etc/letsencrypt/live/gemproxy.example.com/privkey.pem", str(directory / "key.pem"))
        site = site.replace("/var/log/nginx/", f"{directory}/")
        (directory / "gemproxy.conf").write_text(site)
        # As root, nginx's workers would run as nobody, who cannot enter pytest's private temporary directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(
            f"{user}daemon off;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
            f"events {{}}\nhttp {{\n    include {directory}/gemproxy.conf;\n}}\n"
        )
        self.log = (directory / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(directory), "-c", str(directory / "nginx.conf")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._listening, 10, "nginx to listen")

    def _listening(self) -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{self.http_port}/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def access_log(self) -> str:
        return (self.directory / "gemproxy.access.log").read_text()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # fast: a graceful stop would wait for the WebSocket
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedUpstream]:
    fake = ThreadedUpstream()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory, upstream: ThreadedUpstream) -> Iterator[tuple]:
    nginx_binary()  # a failure under CI when nginx is missing, before anything starts
    deployment = Deployment(Path(tmp_path_factory.mktemp("behind-nginx")))
    nginx = None
    try:
        gateway = deployment.start_gateway("gateway", GEMPROXY_DISPATCH_WAIT="5")
        nginx = Nginx(Path(tmp_path_factory.mktemp("nginx")), gateway.port)
        key, token = deployment.proxy_key("nina"), deployment.executor_token("nina@example.com")
        # The executor reaches the gateway only through nginx, over TLS, trusting the throwaway certificate.
        deployment.env["SSL_CERT_FILE"] = str(nginx.cert)
        agent_target = Gateway(gateway.process, gateway.port)
        agent_target.url = nginx.url
        agent = deployment.start_agent(agent_target, token, upstream.url, name="agent-via-nginx")
        gateway.wait_for_executors(1)
        yield agent, gateway, nginx, key
    finally:
        if nginx is not None:
            nginx.stop()
        deployment.stop()


def client(nginx: Nginx) -> httpx.Client:
    return httpx.Client(base_url=nginx.url, verify=ssl.create_default_context(cafile=nginx.cert), timeout=20)


def body(text: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_an_executor_connects_over_wss_through_nginx(behind_nginx) -> None:
    agent, gateway, nginx, _ = behind_nginx

    assert gateway.health()["executors"] == 1
    assert f"connected to wss://127.0.0.1:{nginx.https_port}/ws/executor" in agent.log()


def test_a_stream_arrives_piece_by_piece_through_nginx(behind_nginx, upstream: ThreadedUpstream) -> None:
    _, _, nginx, key = behind_nginx
    with client(nginx) as http:
        with http.stream(
            "POST",
            STREAM,
            params={"alt": "sse"},
            headers={"x-goog-api-key": key},
            json=body("through nginx #hold #chunks=3"),
        ) as response:
            pieces = response.iter_raw()
            started = time.monotonic()
            first = next(pieces)  # the upstream holds the rest until released: a buffering proxy would wait here
            assert time.monotonic() - started < 5
            assert response.status_code == 200
            assert first.startswith(b"data: ")
            upstream.release()
            rest = b"".join(pieces)

    assert rest.count(b"data: ") + first.count(b"data: ") == 3


def test_plain_http_is_redirected_to_https(behind_nginx) -> None:
    _, _, nginx, _ = behind_nginx

    response = httpx.get(f"http://127.0.0.1:{nginx.http_port}/v1beta/models", timeout=5)

    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")


def test_a_request_id_goes_through_and_nginx_makes_one_when_there_is_none(behind_nginx) -> None:
    _, _, nginx, key = behind_nginx
    with client(nginx) as http:
        sent = http.post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            headers={"x-goog-api-key": key, "x-request-id": "via-nginx-1"},
            json=body("id"),
        )
        made = http.post(
            "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": key}, json=body("id")
        )

    assert sent.status_code == 200 and sent.headers["x-request-id"] == "via-nginx-1"
    assert made.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert f"id={made.headers['x-request-id']}" in nginx.access_log()


def test_nginxs_log_keeps_no_key_from_the_query(behind_nginx) -> None:
    _, _, nginx, key = behind_nginx
    with client(nginx) as http:
        answer = http.post("/v1beta/models/gemini-2.5-flash:generateContent", params={"key": key}, json=body("q"))

    assert answer.status_code == 200
    assert key not in nginx.access_log()
