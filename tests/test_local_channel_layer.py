"""The embedded channel layer: in order, bounded, and expired messages swept."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull

from executors import layers
from executors.layers import LocalChannelLayer


async def test_messages_arrive_in_order_and_as_sent() -> None:
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    body = {"type": "executor.frame", "frame": {"type": "response_body", "seq": 0}}

    await layer.send(channel, body)
    await layer.send(channel, {"type": "executor.frame", "frame": {"seq": 1}})

    assert await layer.receive(channel) is body
    assert (await layer.receive(channel))["frame"]["seq"] == 1


async def test_a_full_channel_refuses_more() -> None:
    layer = LocalChannelLayer(capacity=2)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "a"})
    await layer.send(channel, {"type": "b"})

    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "c"})


async def test_messages_nobody_received_expire_and_their_queue_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "SWEEP_SECONDS", 0.0)
    layer = LocalChannelLayer(expiry=0.01)
    abandoned, live = await layer.new_channel(), await layer.new_channel()
    await layer.send(abandoned, {"type": "late frame"})
    await asyncio.sleep(0.02)

    await layer.send(live, {"type": "fresh"})
    await layer.receive(live)

    assert abandoned not in layer.channels
