"""JSON answers and JSON errors, encoded with orjson.

    >>> json_response({"views": []}).body
    b'{"views":[]}'
    >>> error_response(400, "range: not a duration: 'x'").body
    b'{"error":"range: not a duration: \\'x\\'"}'

Every answer of the API is JSON, errors included (``{"error": "..."}``), so
a client never has to guess whether a 404 came from the API or from a proxy
in front of it. orjson is the encoder because query answers can hold
thousands of views; it writes NaN as ``null`` as well, but views go through
:func:`trm_otel.views.view_to_dict` first so that does not depend on it.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["ORJSONResponse", "compressed", "error_response", "json_response"]


class ORJSONResponse(Response):
    """``application/json`` rendered by orjson (numpy scalars and arrays allowed)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> ORJSONResponse:
    """A JSON answer."""
    return ORJSONResponse(content, status_code=status_code, headers=headers)


def error_response(status_code: int, message: str, headers: Mapping[str, str] | None = None) -> ORJSONResponse:
    """``{"error": message}`` with the status; the message says what to change."""
    return ORJSONResponse({"error": message}, status_code=status_code, headers=headers)


def compressed(body: bytes, accept_encoding: str, min_size: int = 1024) -> tuple[bytes, dict[str, str]]:
    """``body`` gzipped when the client accepts gzip and it is worth it, with the headers to send.

    Meant for the worker thread that built the body: a scrape of a few
    thousand series is over 10 MB of text and gzip takes it to about 4%, but
    compressing that much on the event loop would stall every other request
    (zlib releases the GIL, so in a worker it costs the loop nothing).
    """
    headers = {"Vary": "Accept-Encoding"}
    if len(body) < min_size or not _accepts_gzip(accept_encoding):
        return body, headers
    headers["Content-Encoding"] = "gzip"
    return gzip.compress(body, compresslevel=5, mtime=0), headers


def _accepts_gzip(accept_encoding: str) -> bool:
    """True if ``gzip`` (or ``*``) is listed without ``q=0`` (RFC 9110, section 12.5.3)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False
