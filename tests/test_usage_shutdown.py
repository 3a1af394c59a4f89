"""A gateway stopped cleanly (SIGTERM) writes every usage record it queued before exiting."""

from __future__ import annotations

import sqlite3

import httpx2 as httpx

from tests.e2e.harness import Deployment


def test_records_queued_just_before_sigterm_are_written(tmp_path):
    deployment = Deployment(tmp_path)
    try:
        gateway = deployment.start_gateway()
        for _ in range(25):
            assert (
                httpx.get(f"{gateway.url}/v1beta/models", headers={"x-goog-api-key": "gpk_unknown"}).status_code == 400
            )
        gateway.process.stop()  # SIGTERM, sooner than the writer's next batch
        assert gateway.process.popen.returncode == 0
    finally:
        deployment.stop()
    with sqlite3.connect(tmp_path / "gemproxy.sqlite3") as db:
        rows = db.execute("SELECT outcome, sum(calls) FROM accounts_usagerecord GROUP BY outcome").fetchall()
    assert rows == [("rejected_auth", 25)]
