"""Backends as a correlator in production sees them: elsewhere, answering in their own time.

On one small machine the backends share the CPU with the correlator: every millisecond the
correlator spends reading answers and analysing them while it waits slows the backends' own
queries, and the slowest query (the yardstick of a correlation's latency) measures both. In
production the backends run on machines of their own. So this server stands in front of the
real backends and records each distinct request's answer (status, type, bytes) the first time
it is asked; `settle` then times each recorded request alone against the real backend (the
best of three: the backend's own time, with nothing else running), and from then on every
request is answered from the recording after that time, at almost no CPU of this machine.
A request never recorded, once settled, ends this server (a correlation would only name the
part missing, and its figures would be those of less work). The figures are a little
optimistic: each answer comes after its time alone however many are asked at once, and
uncompressed.

    python bench/replay.py PORT=URL [PORT=URL ...]    # prints "ready"; POST /__settle to settle
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp
import yarl
from aiohttp import web

SETTLE = "/__settle"
TIMINGS = 3  # each request timed alone this many times; the best is its backend's own time


class Recording:
    """One backend's requests: forwarded and recorded until settled, replayed after."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.answers: dict[str, tuple[int, str, bytes]] = {}
        self.headers: dict[str, dict[str, str]] = {}  # what each was asked with (X-*)
        self.paths: dict[str, str] = {}
        self.delays: dict[str, float] = {}
        self.settled = False
        self.session: aiohttp.ClientSession | None = None

    async def forward(self, path_qs: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        assert self.session is not None
        url = yarl.URL(self.upstream + path_qs, encoded=True)  # as it came: not quoted again
        async with self.session.get(url, headers=headers) as answer:
            body = await answer.read()
            return answer.status, answer.content_type, body

    async def handle(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-")}
        key = request.raw_path + json.dumps(sorted(headers.items()))  # the X-* headers too
        if self.settled:
            if key not in self.answers:
                print(f"replay: not recorded: {key}", file=sys.stderr, flush=True)
                os._exit(1)
            await asyncio.sleep(self.delays[key])
        elif key not in self.answers:
            self.headers[key], self.paths[key] = headers, request.raw_path
            self.answers[key] = await self.forward(request.raw_path, headers)
        status, kind, body = self.answers[key]
        return web.Response(status=status, body=body, content_type=kind)

    async def settle(self) -> None:
        """Time each recorded request alone, then answer from the recording."""
        for key, path_qs in list(self.paths.items()):
            best = float("inf")
            for _ in range(TIMINGS):
                started = time.perf_counter()
                await self.forward(path_qs, self.headers[key])
                best = min(best, time.perf_counter() - started)
            self.delays[key] = best
        self.settled = True


async def serve(routes: list[tuple[int, str]]) -> None:
    recordings = [Recording(upstream) for _, upstream in routes]
    apps = []
    for (port, _), recording in zip(routes, recordings, strict=True):
        recording.session = aiohttp.ClientSession()

        async def handle(request: web.Request, recording: Recording = recording) -> web.Response:
            if request.path == SETTLE:
                for each in recordings:  # one request at a time: each backend's own time
                    await each.settle()
                return web.Response(text="settled")
            return await recording.handle(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        apps.append((app, port))
    await serve_apps(apps)


async def serve_apps(apps: list[tuple[web.Application, int]]) -> None:
    """Serve each app on its port of 127.0.0.1, say "ready" on stdout, and serve on."""
    for app, port in apps:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve([(int(p), url) for p, url in (a.split("=", 1) for a in sys.argv[1:])]))
