"""A kv-replicated service that passes the functional tests, then answers the load's reads
with garbage: the robust reference (its server.py is deployed beside this file) with the
read of the load's keys (k0, k1, ...) replaced, as the file ``mode`` says:

- ``invalid-utf8``: 1 MiB that is not UTF-8 (0xff), different on every read;
- ``big``: 4 MiB of text with its Content-Length.

Python standard library only: it runs on the grading hosts.
"""

import itertools
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import server  # noqa: E402 - the robust reference, copied beside this file

with open(os.path.join(HERE, "mode")) as fh:
    MODE = fh.read().strip()
LOAD_KEY = re.compile(r"k\d+\Z")
MIB = 1 << 20
BIG = b"x" * (4 * MIB)
COUNTER = itertools.count()
honest_get = server.Handler._get


def garbage() -> bytes:
    if MODE == "big":
        return BIG
    return b"%08d" % next(COUNTER) + b"\xff" * (MIB - 8)


def hostile_get(self: server.Handler) -> None:
    route = self._route()
    if route is not None and route[0] == "kv" and LOAD_KEY.match(route[1]):
        self._reply(200, garbage(), "application/octet-stream")
    else:
        honest_get(self)


server.Handler._get = hostile_get  # type: ignore[method-assign]

if __name__ == "__main__":
    server.main()
