"""An executor's frames unmasked exactly as the native masker does, in one piece or in many."""

from __future__ import annotations

import os

import pytest
from autobahn.nvx._xormasker import create_xor_masker as native_masker
from autobahn.websocket import protocol

from gemproxy_site import websocket_masking
from gemproxy_site.websocket_masking import SMALL_FRAME_BYTES, SmallFrameMasker


def test_the_rfc_example_frame_reads_hello() -> None:
    # RFC 6455, 5.7: a masked text frame holding "Hello".
    frame = bytes.fromhex("818537fa213d7f9f4d5158")
    assert SmallFrameMasker(frame[2:6]).process(frame[6:]) == b"Hello"


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 63, 64, 127, 128, 500, SMALL_FRAME_BYTES - 1])
def test_a_frame_in_one_piece_reads_as_the_native_masker_reads_it(length: int) -> None:
    mask, payload = os.urandom(4), os.urandom(length)
    assert SmallFrameMasker(mask).process(payload) == native_masker(mask, length).process(payload)


def test_a_frame_that_arrives_in_pieces_reads_the_same_as_in_one() -> None:
    mask, payload = os.urandom(4), os.urandom(999)
    whole = native_masker(mask, len(payload)).process(payload)
    for cuts in ([1], [2, 3], [5, 6, 7, 500], list(range(1, 999, 7))):
        masker, pieces, start = SmallFrameMasker(mask), [], 0
        for cut in [*cuts, len(payload)]:
            pieces.append(masker.process(payload[start:cut]))
            start = cut
        assert b"".join(pieces) == whole
        assert masker.pointer() == len(payload)
        masker.reset()
        assert masker.process(payload) == whole


def test_daphne_s_websocket_protocol_unmasks_small_frames_in_python_and_large_ones_natively() -> None:
    websocket_masking.install()
    websocket_masking.install()  # twice, as a test process may: still one layer
    mask = os.urandom(4)
    assert isinstance(protocol.create_xor_masker(mask, 300), SmallFrameMasker)
    large = protocol.create_xor_masker(mask, SMALL_FRAME_BYTES)
    assert not isinstance(large, SmallFrameMasker)
    payload = os.urandom(SMALL_FRAME_BYTES)
    assert large.process(payload) == native_masker(mask, len(payload)).process(payload)
