"""The baseline for bench/intake.py: an aiohttp handler that reads the body and answers 200."""

from __future__ import annotations

import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "stored"})


def main() -> None:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/api/v1/alerts", receive)
    app.router.add_get("/readyz", lambda _: web.json_response({"status": "ready"}))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
