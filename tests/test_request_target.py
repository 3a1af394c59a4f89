"""Request targets as RFC 9112 allows them, brought to the origin form the application routes on."""

from __future__ import annotations

import pytest

from gemproxy_site.request_target import InvalidRequestTarget, RequestTarget, parse_request_target


@pytest.mark.parametrize(
    ("target", "origin_form", "authority"),
    [
        (b"/v1beta/models?key=k", b"/v1beta/models?key=k", None),
        (b"//v1beta/models", b"//v1beta/models", None),
        (b"http://gw.example/v1beta/models?alt=sse", b"/v1beta/models?alt=sse", b"gw.example"),
        (b"HTTPS://gw.example:8443/v1/models", b"/v1/models", b"gw.example:8443"),
        (b"http://gw.example", b"/", b"gw.example"),
        (b"http://gw.example?x=1", b"/?x=1", b"gw.example"),
        (b"http://[::1]:8000/healthz", b"/healthz", b"[::1]:8000"),
    ],
)
def test_origin_and_absolute_forms_become_the_origin_form(target: bytes, origin_form: bytes, authority) -> None:
    assert parse_request_target(target) == RequestTarget(origin_form, authority)


def test_the_path_is_decoded_as_daphne_decodes_it() -> None:
    assert parse_request_target(b"http://h/upload%2Fv1beta/files?x=%41").path == "/upload/v1beta/files"


@pytest.mark.parametrize(
    "target",
    [b"*", b"v1beta/models", b"ftp://h/x", b"http:///x", b"http://u:p@h/x", b"/a\x7f", b"/\x80", b"/a\nb", b"/a b"],
)
def test_anything_else_is_refused(target: bytes) -> None:
    with pytest.raises(InvalidRequestTarget):
        parse_request_target(target)
