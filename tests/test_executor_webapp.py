"""The gateway serves the built browser executor at /executor/, safely and cache-correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import AsyncClient

from executors import webapp


@pytest.fixture
def built_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>executor</title>")
    (tmp_path / "assets" / "index-3f2a1b.js").write_text("console.log('executor')")
    (tmp_path.parent / "secret.txt").write_text("outside the app")
    monkeypatch.setattr(webapp, "dist_dir", lambda: tmp_path)
    return tmp_path


async def test_the_index_is_served_and_always_revalidated(built_app: Path) -> None:
    response = await AsyncClient().get("/executor/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response["Cache-Control"] == "no-cache"


async def test_hashed_assets_are_cached_for_good(built_app: Path) -> None:
    response = await AsyncClient().get("/executor/assets/index-3f2a1b.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert "immutable" in response["Cache-Control"]


async def test_the_address_without_a_slash_redirects(built_app: Path) -> None:
    response = await AsyncClient().get("/executor")

    assert response.status_code == 301
    assert response["Location"] == "/executor/"


@pytest.mark.parametrize("path", ["/executor/../secret.txt", "/executor/%2e%2e/secret.txt", "/executor/assets/nope.js"])
async def test_nothing_outside_the_build_is_served(built_app: Path, path: str) -> None:
    response = await AsyncClient().get(path)

    assert response.status_code == 404
    assert b"outside the app" not in response.content


@pytest.mark.parametrize("asset", ["x" * 300, "a\x00b", "assets/" + "y" * 5000])
async def test_names_the_file_system_cannot_take_are_not_found(built_app: Path, asset: str) -> None:
    response = await AsyncClient().get(f"/executor/{asset}")

    assert response.status_code == 404


async def test_an_unbuilt_app_explains_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webapp, "dist_dir", lambda: tmp_path / "missing")

    response = await AsyncClient().get("/executor/")

    assert response.status_code == 503
    assert b"npm run build" in response.content
