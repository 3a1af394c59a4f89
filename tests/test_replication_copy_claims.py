"""A copy of a file to an account is claimed by one caller at a time, embedded and across processes (Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from resources.copy_claims import CopyClaims, LocalCopyClaims, RedisCopyClaims


@pytest.fixture(params=["local", "redis"])
def claims(request: pytest.FixtureRequest) -> Iterator[CopyClaims]:
    if request.param == "local":
        yield LocalCopyClaims()
        return
    yield RedisCopyClaims(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"), 2.0)


async def test_a_held_claim_is_refused_to_the_next_caller(claims: CopyClaims) -> None:
    first = await claims.claim("f1:7", 60)

    assert first is not None
    assert await claims.claim("f1:7", 60) is None
    assert await claims.claim("f1:8", 60) is not None  # another account's copy is another claim


async def test_a_released_claim_can_be_taken_again(claims: CopyClaims) -> None:
    token = await claims.claim("f2:7", 60)
    assert token is not None

    await claims.release("f2:7", token)

    assert await claims.claim("f2:7", 60) is not None


async def test_only_the_claimant_releases_a_claim(claims: CopyClaims) -> None:
    await claims.claim("f3:7", 60)

    await claims.release("f3:7", "not-the-token")

    assert await claims.claim("f3:7", 60) is None


async def test_a_claim_whose_holder_died_frees_itself(claims: CopyClaims) -> None:
    await claims.claim("f4:7", 0.2)

    await asyncio.sleep(0.3)

    assert await claims.claim("f4:7", 60) is not None
