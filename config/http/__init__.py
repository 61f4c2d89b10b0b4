"""The HTTP edge: what every request and websocket meets before a view (the raw ASGI edge, middleware,
the WSGI bridge, websocket origins, request ids)."""
