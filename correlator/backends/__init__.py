"""Clients of the telemetry backends (Prometheus, later Loki and Jaeger): the only I/O of the
correlation pipeline. Each translates its backend's failures into BackendUnavailable (try again
later), BackendRefused (the query will never work) or BackendGarbage (an answer that is not
what the API promises)."""
