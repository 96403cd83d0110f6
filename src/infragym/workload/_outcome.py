"""How a response, or its absence, becomes ``ok``, ``fail`` or ``info``.

A checker may ignore a ``fail`` (it surely had no effect) but must allow both outcomes of
an ``info``, so ``fail`` is only claimed when the request surely had no effect:

==============================================  =======  ==================================
what happened                                   outcome  why
==============================================  =======  ==================================
HTTP 2xx                                        ok       the server says it was done
HTTP 4xx, HTTP 503                              fail     the server definitely refused
HTTP other 5xx, 1xx, 3xx                        info     it may have been done (or half)
connection refused / could not connect (also    fail     the request was never sent
not connected within half the op timeout)
the client is at ``max_in_flight``              fail     never sent ("client overloaded")
op timeout, connection reset or closed after    info     the server may have acted on it
sending, truncated or malformed response
a body over ``MAX_BODY_BYTES``: a read          fail     a read changes nothing, and its
                                                         answer is refused unread
a body over ``MAX_BODY_BYTES``: anything else   info     the server may have acted on it
==============================================  =======  ==================================

A body is never read past ``MAX_BODY_BYTES``: a transport refuses a larger Content-Length
before reading any of the body, and stops a chunked or close-delimited body at the first
byte over the limit, then closes the connection. A service must not be able to fill the
grading process's memory (all episodes of a batch share it) by answering with huge bodies.

A client may refine the 2xx and 4xx rows for its API (for the key-value API a read's 404
is ``ok`` with value ``None``; a cas's 409 is a ``fail``). An operation still in flight when
the run's drain ends gets no completion at all, which ``pair_operations`` reads as info.
Redirects are not followed and a request is sent at most once (no silent retry), so one
operation is one request.
"""

from __future__ import annotations

import asyncio

import aiohttp

from .._errors import InfraGymError
from ..history import OpType
from ._spec import Result

OVERLOADED = "client overloaded"

MAX_BODY_BYTES = 1 << 20
"""The largest response body a transport reads (1 MiB); see the module doc."""

MAX_ERROR_CHARS = 300
"""An outcome's error text is cut to this length (a service may put anything in it)."""


def body_limit_text(limit: int = MAX_BODY_BYTES) -> str:
    """``"1 MiB"`` for the default limit, bytes otherwise."""
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"


class RequestNotSent(InfraGymError):
    """The request surely never reached the server (a transport's definite failure)."""


class ResponseBroken(InfraGymError):
    """The request may have reached the server but no complete response came back."""


class BodyTooLarge(ResponseBroken):
    """The response's body is over the limit; it was not read (a read's ``fail``)."""

    def __init__(self, limit: int = MAX_BODY_BYTES) -> None:
        super().__init__(f"response body over {body_limit_text(limit)}, refused unread")


def status_outcome(status: int) -> OpType:
    """The generic rule for an HTTP status code (see the module table)."""
    if 200 <= status < 300:
        return OpType.OK
    if 400 <= status < 500 or status == 503:
        return OpType.FAIL
    return OpType.INFO


def status_result(status: int, value: object = None) -> Result:
    """A client's result for an HTTP status by the generic table: ``value`` is kept as the
    completion's value; anything but ok carries the status as its error."""
    kind = status_outcome(status)
    return Result(kind, value, None if kind is OpType.OK else f"HTTP {status}")


def error_result(exc: BaseException, timeout: float, f: str | None = None) -> Result:
    """Classify an exception raised while sending a request or reading its response
    (``f``: the operation's kind, which decides an oversize answer's outcome)."""
    if isinstance(exc, BodyTooLarge):
        return Result(OpType.FAIL if f == "read" else OpType.INFO, error=str(exc))
    if isinstance(exc, RequestNotSent):
        return Result(OpType.FAIL, error=str(exc))
    if isinstance(exc, ResponseBroken):
        return Result(OpType.INFO, error=str(exc))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Result(OpType.FAIL, error=f"could not connect within {timeout / 2:g}s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Result(OpType.FAIL, error=f"could not connect: {exc.os_error or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return Result(OpType.FAIL, error=f"could not connect: {exc}")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return Result(OpType.INFO, error=f"timeout after {timeout:g}s")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Result(OpType.INFO, error="server disconnected before a complete response")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Result(OpType.INFO, error=f"truncated response: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return Result(OpType.INFO, error=f"malformed response: {exc.message}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return Result(OpType.INFO, error=f"connection error: {type(exc).__name__}: {exc}")
    return Result(OpType.INFO, error=f"unexpected {type(exc).__name__}: {exc}")
