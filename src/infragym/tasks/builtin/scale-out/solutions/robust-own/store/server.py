"""The visit counts, served to the app hosts over TCP on port 7000.

One request per line, one answer per line: "INCR <user>" -> the new count, "GET <user>"
-> the count (0 if unseen). Every increment is appended to DATA_DIR/visits.log before it
is answered, and the log is replayed at start, so a restarted store keeps its counts.
One event loop: increments are atomic without a lock."""

import asyncio
import os
from collections import Counter
from pathlib import Path

LOG = Path(os.environ.get("DATA_DIR", "/tmp")) / "visits.log"
counts: Counter[str] = Counter()
if LOG.exists():
    counts.update(LOG.read_text().split())
log = LOG.open("a", buffering=1)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            verb, _, user = line.decode().strip().partition(" ")
            if verb == "INCR" and user:
                counts[user] += 1
                log.write(user + "\n")
                writer.write(b"%d\n" % counts[user])
            elif verb == "GET" and user:
                writer.write(b"%d\n" % counts[user])
            else:
                writer.write(b"ERR\n")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, "0.0.0.0", 7000, backlog=512)
    async with server:
        await server.serve_forever()


asyncio.run(main())
