"""Serving a test server's aiohttp app on loopback, and waiting for things to happen."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 for the block; yields its base URL (no trailing slash)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def eventually(predicate: Callable[[], object], what: str, timeout_s: float = 30) -> None:
    """Poll a cheap predicate until it holds; fail naming `what`."""
    for _ in range(int(timeout_s / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class InThread:
    """An aiohttp app served from a background thread, for synchronous tests whose system under
    test runs in another process (`with InThread(app) as url:`)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: TestServer | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = TestServer(self.app, host="127.0.0.1")
        self._loop.run_until_complete(self._server.start_server())
        self.url = str(self._server.make_url("")).rstrip("/")
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the test server did not start")
        return self.url

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        asyncio.run_coroutine_threadsafe(self._server.close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
