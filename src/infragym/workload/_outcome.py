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
==============================================  =======  ==================================

A client may refine the 2xx and 4xx rows for its API (for the key-value API a read's 404
is ``ok`` with value ``None``; a cas's 409 is a ``fail``). An operation still in flight when
the run's drain ends gets no completion at all, which ``pair_operations`` reads as info.
Redirects are not followed and a request is sent at most once (no silent retry), so one
operation is one request.
"""

from __future__ import annotations

import asyncio

import aiohttp

from ..history import OpType
from ._spec import Result

OVERLOADED = "client overloaded"


class RequestNotSent(Exception):
    """The request surely never reached the server (a transport's definite failure)."""


class ResponseBroken(Exception):
    """The request may have reached the server but no complete response came back."""


def status_outcome(status: int) -> OpType:
    """The generic rule for an HTTP status code (see the module table)."""
    if 200 <= status < 300:
        return OpType.OK
    if 400 <= status < 500 or status == 503:
        return OpType.FAIL
    return OpType.INFO


def status_result(status: int, value: object = None) -> Result:
    kind = status_outcome(status)
    return Result(kind, value, None if kind is OpType.OK else f"HTTP {status}")


def error_result(exc: BaseException, timeout: float) -> Result:
    """Classify an exception raised while sending a request or reading its response."""
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
