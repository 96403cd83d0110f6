"""A real browser for tests: Debian's headless Chromium driven over the DevTools protocol.

Chromium runs in a network namespace of its own that has no interface up, so a page that
needs the network cannot get it (and every request it tries is still reported by the
protocol). The protocol goes over ``--remote-debugging-pipe`` (fds 3 and 4: JSON messages
ended by a NUL byte), which needs no port, so nothing outside the namespace is needed.
``png_pixels`` decodes the screenshots it takes, so a test can look at what it drew.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import AsyncIterator
from typing import Any

CHROMIUM = ("chromium", "chromium-browser")


def find_chromium() -> tuple[str | None, str]:
    """Chromium's path, installing Debian's package when it is missing and apt can (as
    setup.sh does for the tests); else None and why not."""
    for name in CHROMIUM:
        if path := shutil.which(name):
            return path, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "chromium is not installed and cannot be (no root or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(
            ["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600, check=False
        )
        r = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "chromium is not installed and `apt-get install chromium` timed out"
    for name in CHROMIUM:
        if path := shutil.which(name):
            return path, ""
    tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"chromium is not installed and apt-get could not install it: {tail[0]}"


class DevTools:
    """One browser, its protocol messages, and the events it sent."""

    def __init__(
        self, proc: asyncio.subprocess.Process, reader: asyncio.StreamReader, write_fd: int
    ) -> None:
        self.proc = proc
        self._reader = reader
        self._write_fd = write_fd
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._pump = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            try:
                raw = await self._reader.readuntil(b"\0")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                break
            msg = json.loads(raw[:-1])
            fut = self._waiting.pop(msg.get("id", -1), None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(msg)
            else:
                self.events.append(msg)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(RuntimeError("chromium closed its DevTools pipe"))

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        os.write(self._write_fd, json.dumps(msg).encode() + b"\0")
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def events_of(self, method: str) -> list[dict[str, Any]]:
        return [e.get("params", {}) for e in self.events if e.get("method") == method]

    async def wait_event(self, method: str, after: int = 0, timeout: float = 60) -> dict[str, Any]:
        """The first ``method`` event past the first ``after`` of them."""
        async with asyncio.timeout(timeout):
            while len(self.events_of(method)) <= after:
                await asyncio.sleep(0.05)
        return self.events_of(method)[after]

    async def evaluate(self, session: str, expression: str) -> Any:
        r = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")


@contextlib.asynccontextmanager
async def chromium(path: str) -> AsyncIterator[DevTools]:
    """Headless Chromium in an empty network namespace, its protocol on a pipe."""
    cmd_r, cmd_w = os.pipe()
    out_r, out_w = os.pipe()
    assert min(cmd_r, cmd_w, out_r, out_w) > 4, "the pipe must not take fds 3 or 4"
    profile = tempfile.mkdtemp(prefix="infragym-chromium-")
    args = [
        path,
        "--headless",
        "--no-sandbox",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--mute-audio",
        "about:blank",
    ]
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "-rn"]
    # the browser reads commands on fd 3 and writes replies on fd 4
    script = f'exec "$@" 3<&{cmd_r} 4>&{out_w} {cmd_r}<&- {out_w}>&- {cmd_w}>&- {out_r}<&-'
    proc = await asyncio.create_subprocess_exec(
        *unshare,
        "bash",
        "-c",
        script,
        "bash",
        *args,
        pass_fds=(cmd_r, cmd_w, out_r, out_w),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(cmd_r)
    os.close(out_w)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(out_r, "rb", 0)
    )
    dt = DevTools(proc, reader, cmd_w)
    try:
        yield dt
    finally:
        with contextlib.suppress(Exception):
            await dt.send("Browser.close", timeout=10)
        with contextlib.suppress(ProcessLookupError):
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        os.close(cmd_w)
        transport.close()
        dt._pump.cancel()
        shutil.rmtree(profile, ignore_errors=True)


async def open_page(dt: DevTools, url: str, width: int = 1280, height: int = 900) -> str:
    """A new tab with every event domain on, ``url`` loaded; its session id."""
    target = (await dt.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
    session = (await dt.send("Target.attachToTarget", {"targetId": target, "flatten": True}))[
        "sessionId"
    ]
    for domain in ("Network", "Runtime", "Log", "Page"):
        await dt.send(f"{domain}.enable", {}, session)
    await dt.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session,
    )
    loads = len(dt.events_of("Page.loadEventFired"))  # about:blank's may come late
    await dt.send("Page.navigate", {"url": url}, session)
    await dt.wait_event("Page.loadEventFired", after=loads)
    return session


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what
    Chromium's screenshots are)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        row_at = y * (stride + 1)
        kind = raw[row_at]
        line = bytearray(raw[row_at + 1 : row_at + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        pixels += [(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels)]
        prev = line
    return width, height, pixels
