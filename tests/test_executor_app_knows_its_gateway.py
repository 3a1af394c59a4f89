"""/executor/ served by a gateway names that gateway, so the app's settings start with it filled in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from executors import webapp

HEAD = '<!DOCTYPE html>\n<html lang="en">\n  <head>\n'
INDEX = HEAD + '    <meta charset="UTF-8" />\n  </head>\n  <body></body>\n</html>\n'


@pytest.fixture
def built_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: SettingsWrapper) -> Path:
    settings.ALLOWED_HOSTS = ["testserver", "gw.example.com"]
    settings.PUBLIC_BASE_URL = ""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index.html").write_text(INDEX)
    monkeypatch.setattr(webapp, "dist_dir", lambda: tmp_path)
    return tmp_path


def gateway_meta(page: bytes) -> list[str]:
    return re.findall(r'<meta name="gemproxy-gateway" content="([^"]*)" />', page.decode())


def test_the_index_names_the_gateway_it_came_from(built_app: Path) -> None:
    response = Client().get("/executor/", headers={"host": "gw.example.com:8000"})

    assert response.status_code == 200
    assert gateway_meta(response.content) == ["http://gw.example.com:8000"]


def test_the_tag_is_the_first_thing_in_head(built_app: Path) -> None:
    response = Client().get("/executor/index.html")

    assert response.content.decode().startswith(HEAD + '    <meta name="gemproxy-gateway"')


def test_a_secure_request_names_an_https_gateway(built_app: Path) -> None:
    response = Client().get("/executor/", secure=True, headers={"host": "gw.example.com"})

    assert gateway_meta(response.content) == ["https://gw.example.com"]


def test_a_forged_host_gets_a_400_not_a_page_naming_it(built_app: Path) -> None:
    response = Client().get("/executor/", headers={"host": 'evil.example"><script>'})

    assert response.status_code == 400
    assert b"<script>" not in response.content


def test_the_public_base_url_wins_over_the_host_header(built_app: Path, settings: SettingsWrapper) -> None:
    settings.PUBLIC_BASE_URL = "https://gemproxy.example.com"

    response = Client().get("/executor/", headers={"host": "gw.example.com"})

    assert gateway_meta(response.content) == ["https://gemproxy.example.com"]


def test_other_files_are_served_as_built(built_app: Path) -> None:
    response = Client().get("/executor/assets/index.html")

    assert response.content.decode() == INDEX


def test_the_url_is_escaped_in_the_attribute() -> None:
    page = webapp.with_gateway_url(INDEX.encode(), 'http://gw/"><b>')

    assert b'content="http://gw/&quot;&gt;&lt;b&gt;"' in page
