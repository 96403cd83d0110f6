"""HTTP mappings of operations: the key-value API and a generic request.

The key-value API (what tasks tell agents to implement, exactly)::

    PUT  /kv/{key}        body = the value, raw bytes (UTF-8)   -> 2xx when stored
    GET  /kv/{key}                                              -> 200, body = the value, raw
                                                                -> 404 when the key is absent
    POST /kv/{key}/cas    {"expected": E, "new": N} (JSON)      -> 200 when swapped
                                                                -> 409 when the value is not E
                          (E = null: swap only if the key is absent)

A read of an absent key is a successful read of ``None``; a read answered with another 2xx
(say 204) is ``info``, since it does not say what the value is; a cas that got 409 definitely did
nothing, so it is a ``fail``. Everything else follows the generic table in ``_outcome``.
Bodies are compared byte-for-byte (no trimming): a server that appends a newline returns a
different value. A read's value is kept as ``history.stored_bytes`` keeps a body: the text
when it is at most 256 bytes of UTF-8, else a digest of the bytes (no body over
``MAX_BODY_BYTES`` is ever read: such a read fails, see ``_outcome``).
"""

from __future__ import annotations

import json

from .._errors import ConfigError
from ..history import OpType, stored_bytes
from ._outcome import status_result
from ._spec import HttpCall, Op, Result

KV_PREFIX = "/kv/"


class KVClient:
    """Reads, writes and cas over the key-value HTTP API above."""

    __slots__ = ()

    def encode(self, op: Op) -> HttpCall:
        if op.key is None:
            raise ConfigError(f"a key-value {op.f!r} needs a key")
        path = KV_PREFIX + op.key
        if op.f == "read":
            return HttpCall("GET", path)
        if op.f == "write":
            return HttpCall("PUT", path, str(op.value).encode(), "application/octet-stream")
        if op.f == "cas":
            expected, new = op.value
            body = json.dumps({"expected": expected, "new": new}).encode()
            return HttpCall("POST", path + "/cas", body, "application/json")
        raise ConfigError(f"KVClient performs read, write and cas, not {op.f!r}")

    def decode(self, op: Op, status: int, body: bytes) -> Result:
        if op.f == "read":
            if status == 404:
                return Result(OpType.OK, None)
            if status == 200:
                return Result(OpType.OK, stored_bytes(body))
            if 200 <= status < 300:
                return Result(OpType.INFO, None, f"HTTP {status}: a read must answer 200 or 404")
            return status_result(status)
        if op.f == "cas" and status == 409:
            return Result(OpType.FAIL, op.value, "HTTP 409: value differs from expected")
        return status_result(status, op.value)

    def __eq__(self, other: object) -> bool:
        return type(other) is KVClient

    def __hash__(self) -> int:
        return hash(KVClient)


class RequestClient:
    """Any request: 2xx is ok, the rest by the generic table; the completion's value is
    the status code, so an availability check can see what the server answered."""

    __slots__ = ()

    def encode(self, op: Op) -> HttpCall:
        if op.f != "request" or op.key is None:
            raise ConfigError(f"RequestClient performs 'request' ops with a path, not {op}")
        body = None if op.value is None else str(op.value).encode()
        return HttpCall(op.method or "GET", op.key, body)

    def decode(self, op: Op, status: int, body: bytes) -> Result:
        return status_result(status, status)

    def __eq__(self, other: object) -> bool:
        return type(other) is RequestClient

    def __hash__(self) -> int:
        return hash(RequestClient)
