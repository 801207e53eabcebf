"""Every records endpoint, as `handlers.app` mounts them and `/openapi.json` describes them."""

from __future__ import annotations

from typing import Any

from . import channel_summary, content, follow_ups, progress, session_record, templates

_MODULES = (session_record, content, templates, follow_ups, progress, channel_summary)

routes = [route for module in _MODULES for route in module.routes]
openapi_paths: dict[str, Any] = {}
openapi_schemas: dict[str, Any] = {}
for _module in _MODULES:
    openapi_paths.update(_module.openapi_paths)
    openapi_schemas.update(getattr(_module, "openapi_schemas", {}))
