"""The web UI served by the daemon: dashboard pages, their assets, and the live event stream.

    >>> from trm_otel.ui import StreamHub, ui_routes
    >>> hub = StreamHub()
    >>> routes = ui_routes(hub)          # /, /d/{uid}, /static/..., /api/v1/stream
    >>> hub.publish_views("default")     # each closed window: open dashboards refetch
    0

``routes`` serves the pages and assets; ``stream`` the server-sent events.
The pages are vanilla JavaScript over the dashboards HTTP API, drawn with
the plotly.js that the plotly wheel ships: no build step, no CDN.
"""

from trm_otel.ui.routes import ui_routes
from trm_otel.ui.stream import StreamHub

__all__ = ["StreamHub", "ui_routes"]
