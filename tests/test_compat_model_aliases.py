"""Model aliases: from GEMPROXY_MODEL_ALIASES and the admin's table, and what a name that is neither becomes."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from gateway.compat import aliases
from gateway.compat.alias_setting import GEMINI_MODEL_ID, parse_aliases
from gateway.compat.surface import SurfaceError
from gateway.models import ModelAlias
from gateway.resources import MODEL_ID


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    settings.GEMPROXY_MODEL_ALIASES = {"gpt-4o": "gemini-2.5-flash", "claude-sonnet-4-5": "gemini-2.5-pro"}
    aliases.forget_cached()
    yield
    aliases.forget_cached()


def test_the_setting_is_parsed_into_names_and_gemini_models():
    assert parse_aliases(" gpt-4o = gemini-2.5-flash , claude-sonnet-4-5=models/gemini-2.5-pro,") == {
        "gpt-4o": "gemini-2.5-flash",
        "claude-sonnet-4-5": "gemini-2.5-pro",
    }


@pytest.mark.parametrize(
    "text", ["gpt-4o", "gpt-4o=", "gpt 4o=gemini-2.5-flash", "gpt-4o=Gemini Flash", "=gemini-2.5-flash"]
)
def test_a_bad_setting_entry_stops_the_start_with_its_text(text):
    with pytest.raises(ValueError, match="GEMPROXY_MODEL_ALIASES"):
        parse_aliases(text)


def test_the_settings_copy_of_the_model_id_grammar_is_the_gateways():
    assert GEMINI_MODEL_ID.pattern == MODEL_ID.pattern


@pytest.mark.django_db(transaction=True)
async def test_the_admin_table_adds_aliases_and_wins_over_the_setting():
    await sync_to_async(ModelAlias.objects.create)(name="gpt-4o", model="gemini-2.5-pro")
    await sync_to_async(ModelAlias.objects.create)(name="o3", model="gemini-2.5-pro")
    assert await aliases.resolve("gpt-4o") == "gemini-2.5-pro"
    assert await aliases.resolve("o3") == "gemini-2.5-pro"
    assert await aliases.resolve("claude-sonnet-4-5") == "gemini-2.5-pro"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemma-3-27b-it", "gemma-3-27b-it"),
        ("text-embedding-004", "text-embedding-004"),
    ],
)
async def test_gemini_model_ids_are_served_as_themselves(name, model):
    assert await aliases.resolve(name) == model


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["gpt-5", "claude-opus-4", "Gemini-2.5-Flash", "gemini-../../x", "models/"])
async def test_any_other_name_is_a_404_listing_the_aliases(name):
    with pytest.raises(SurfaceError) as refused:
        await aliases.resolve(name)
    assert refused.value.http_status == 404 and refused.value.code == "model_not_found"
    assert "claude-sonnet-4-5, gpt-4o" in refused.value.message


@pytest.mark.django_db
def test_the_admin_refuses_an_alias_to_something_that_is_not_a_gemini_model_id():
    with pytest.raises(ValidationError) as refused:
        ModelAlias(name="gpt-4o", model="Gemini Pro!").full_clean()
    assert "model" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        ModelAlias(name="has space", model="gemini-2.5-pro").full_clean()
    assert "name" in refused.value.message_dict


@pytest.mark.django_db
def test_the_admin_lists_and_adds_aliases(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/gateway/modelalias/").status_code == 200
    added = client.post("/admin/gateway/modelalias/add/", {"name": "gpt-4.1", "model": "gemini-2.5-pro", "note": ""})
    assert added.status_code == 302
    assert ModelAlias.objects.get(name="gpt-4.1").model == "gemini-2.5-pro"
