"""The daemon's local HTTP endpoints, on 127.0.0.1 only.

Modules:

- ``http``    -- a small bounded HTTP/1.1 server on trio and h11; binds only the loopback.
- ``metrics`` -- Prometheus metrics (off by default): ``NodeCollector`` reads the services'
                 counters at each scrape; ``MetricsService`` serves ``/metrics``.
- ``auth``    -- the owner's secret (0600 in the data directory) and one-time login links.
- ``page``    -- the owner's page rendered as plain HTML from ``status`` (pure).
- ``ui``      -- ``UiService``: the page, its JSON and its controls (suspend, resume, settings).
"""
