"""The chat page (HTML; the data comes from the REST API and the websocket)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def chat(request):
    return render(request, "assistant/chat.html")
