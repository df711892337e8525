"""Typed keys of what the application holds while it runs."""

from __future__ import annotations

import asyncio

from aiohttp import web

from correlator.intake import IntakeWriter
from correlator.loops import Loops
from correlator.metrics import Metrics
from correlator.settings import Settings
from correlator.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
INTAKE = web.AppKey("intake", IntakeWriter)
METRICS = web.AppKey("metrics", Metrics)
LOOPS = web.AppKey("loops", Loops)
LARGE_BODIES = web.AppKey("large_bodies", asyncio.Semaphore)
