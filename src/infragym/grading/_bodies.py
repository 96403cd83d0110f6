"""Reading a service's answers in a grader without letting it fill the grading process.

Every episode of a batch is graded in one process, so a grader must never read a body
whole: a service answering with gigabytes would take all the episodes down with it.
"""

from __future__ import annotations

import aiohttp

from ..workload import MAX_BODY_BYTES, BodyTooLarge, read_body
from ._functional import ExpectationFailed

__all__ = ["read_capped"]


async def read_capped(resp: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes:
    """``resp``'s body, read no further than ``limit`` bytes (1 MiB by default).

    A larger body (by its Content-Length, before reading any of it, or at ``limit + 1``
    bytes of a chunked or close-delimited one) fails the expectation: raises
    :class:`ExpectationFailed` saying which request answered too much.
    """
    try:
        return await read_body(resp, limit)
    except BodyTooLarge as exc:
        what = f"{resp.method} {resp.url.path_qs}"
        raise ExpectationFailed(
            f"{what}: {exc}; a service's answers must stay within this limit"
        ) from None
