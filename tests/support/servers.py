"""Serving a test server's aiohttp app on loopback, and waiting for things to happen."""

from __future__ import annotations

import asyncio
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
