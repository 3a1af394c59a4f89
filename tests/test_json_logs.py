"""With LOG_FORMAT=json every log line is one JSON object (time, level, logger, message, and a call's
fields as fields), the access log's included; no line ever carries a key or a token."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gemproxy_site.access_log import RedactingAccessLog
from gemproxy_site.log_format import JsonFormatter
from tests.api_doubles import GENERATE, asgi_call

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header

ROOT = Path(__file__).resolve().parents[1]


def record(message: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("gemproxy.test").makeRecord("gemproxy.test", level, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_a_line_is_one_object_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("%s calls", 3, level=logging.WARNING))

    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "gemproxy.test"
    assert entry["message"] == "3 calls"
    assert entry["time"].endswith("+00:00")


def test_the_callers_extra_fields_are_fields_of_the_object() -> None:
    entry = json.loads(JsonFormatter().format(record("call", outcome="ok", tokens=12, model=None, where=Path("/x"))))

    assert (entry["outcome"], entry["tokens"], entry["model"], entry["where"]) == ("ok", 12, None, "/x")
    assert "args" not in entry and "msg" not in entry and "levelno" not in entry


def test_a_message_with_newlines_and_escapes_stays_one_line() -> None:
    line = JsonFormatter().format(record("forged\nINFO line\r\x1b[31m red"))

    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert json.loads(line)["message"] == "forged\nINFO line\r\x1b[31m red"


def test_a_traceback_is_a_field_of_the_same_line() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        made = logging.getLogger("gemproxy.test").makeRecord(
            "gemproxy.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )

    line = JsonFormatter().format(made)

    assert "\n" not in line
    assert "ValueError: broken" in json.loads(line)["exception"]


async def test_the_calls_line_carries_the_calls_fields(exchanges, key_header, caplog) -> None:
    exchanges.pieces = [b'{"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6}}']
    caplog.set_level(logging.INFO, logger="gemproxy.calls")

    answer = await asgi_call("POST", GENERATE, headers={**key_header, "x-request-id": "req-42"}, body=b"{}")

    [line] = [r for r in caplog.records if r.name == "gemproxy.calls"]
    entry = json.loads(JsonFormatter().format(line))
    assert answer.status == 200
    assert entry["request_id"] == "req-42"
    assert (entry["http_method"], entry["method"], entry["model"]) == ("POST", "generateContent", "gemini-2.5-flash")
    assert (entry["status"], entry["outcome"], entry["tokens"], entry["attempts"]) == (200, "ok", 10, 1)
    assert entry["executor_account"] == "scripted"
    assert isinstance(entry["duration_ms"], int)


def test_log_format_json_makes_the_sites_log_lines_json(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")},
        "DJANGO_SETTINGS_MODULE": "gemproxy_site.settings",
        "GEMPROXY_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "test",
        "LOG_FORMAT": "json",
    }
    program = "import django, logging; django.setup(); logging.getLogger('gemproxy.calls').info('one %s', 'line')"

    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )

    [line] = result.stderr.splitlines()
    assert json.loads(line)["message"] == "one line"
    assert json.loads(line)["logger"] == "gemproxy.calls"


def test_python_warnings_are_json_lines_too(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")},
        "DJANGO_SETTINGS_MODULE": "gemproxy_site.settings",
        "GEMPROXY_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "test",
        "LOG_FORMAT": "json",
    }
    program = "import django, warnings; django.setup(); warnings.warn('old thing', DeprecationWarning, stacklevel=1)"

    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )

    [line] = result.stderr.splitlines()
    assert json.loads(line)["logger"] == "py.warnings"
    assert "old thing" in json.loads(line)["message"]


def test_without_log_format_the_lines_stay_plain(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "LOG_FORMAT")},
        "DJANGO_SETTINGS_MODULE": "gemproxy_site.settings",
        "GEMPROXY_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "test",
    }
    program = "import django, logging; django.setup(); logging.getLogger('gemproxy.calls').info('one line')"

    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )

    assert result.stderr.strip().endswith("INFO gemproxy.calls one line")


def test_the_access_log_is_json_too_and_redacted(monkeypatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    stream = io.StringIO()

    RedactingAccessLog(stream).write_entry(
        "127.0.0.1:5000", None, 'GET /v1beta/models?key=AIzaSECRET&pageToken=p1&x="\n', 200, 17
    )

    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert "AIzaSECRET" not in line
    assert entry["request"] == "GET /v1beta/models?key=REDACTED&pageToken=p1&x=\\x22\\x0a"
    assert (entry["logger"], entry["status"], entry["bytes"], entry["client"]) == (
        "daphne.access",
        200,
        17,
        "127.0.0.1:5000",
    )


async def test_no_log_line_carries_the_key_whatever_way_it_came(exchanges, amake_key, caplog) -> None:
    """Every record of a call, in both formats: the key in the header, in ?key= and as a request id."""
    _, secret = await amake_key()
    caplog.set_level(logging.DEBUG)
    exchanges.head = exchanges.head.__class__(500, {"content-type": "application/json"})

    await asgi_call("POST", GENERATE, query=f"key={secret}", body=b"{}", headers={"x-request-id": secret})
    await asgi_call("POST", GENERATE, headers={"x-goog-api-key": secret, "x-request-id": f"id-{secret}"}, body=b"{}")
    await asgi_call("POST", GENERATE, headers={"authorization": f"Bearer {secret}"}, body=b"{}")

    formatters = (JsonFormatter(), logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    lines = [formatter.format(line) for line in caplog.records for formatter in formatters]
    assert len([line for line in caplog.records if line.name == "gemproxy.calls"]) == 3
    assert not [line for line in lines if secret in line or secret[12:] in line]
