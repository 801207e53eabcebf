"""Every records endpoint, as `handlers.app` mounts them (and `/openapi.json` reads them)."""

from __future__ import annotations

from . import channel_summary, content, follow_ups, progress, session_record, templates

_MODULES = (session_record, content, templates, follow_ups, progress, channel_summary)

routes = [route for module in _MODULES for route in module.routes]
