"""Websocket routes of the assistant (the streaming consumer lands with the streaming issue)."""

websocket_urlpatterns: list = []
