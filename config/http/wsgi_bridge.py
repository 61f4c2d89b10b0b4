"""Plain HTTP through Django's WSGI handler inside the ASGI process, with fewer thread hand-offs.

a2wsgi's responder hands every response message (start, each body chunk, the end) from the WSGI
thread to the event loop and waits for the loop to take it: three round trips per response, each
needing the loop thread to get the GIL while the other server threads compete for it. Under load
these waits were most of a request's time (bench/RESULTS.md). Django's plain responses are one
small body, so here the messages are kept in the WSGI thread and sent by the request's own task
once the application returns (no sender task, no queue); a response that grows past BUFFER_LIMIT
bytes (a large file) is streamed as a2wsgi does, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any

from a2wsgi.wsgi import Body, WSGIMiddleware, WSGIResponder, build_environ

BUFFER_LIMIT = 256 * 1024


class BufferedWSGIResponder(WSGIResponder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffered: list[dict[str, Any]] = []
        self.buffered_bytes = 0
        self.streaming = False
        self.sender_task: asyncio.Task | None = None  # only once the response outgrows the buffer
        self.client_send = None

    def send(self, message: dict[str, Any] | None) -> None:  # runs in the WSGI thread
        if self.streaming:
            super().send(message)
            return
        self.buffered.append(message)
        self.buffered_bytes += len(message.get("body", b"")) if message else 0
        if self.buffered_bytes > BUFFER_LIMIT:
            # From here on, a2wsgi's way: a sender task on the loop drains the send queue.
            self.streaming = True
            asyncio.run_coroutine_threadsafe(self._start_sender(), self.loop).result()
            pending, self.buffered = self.buffered, []
            for queued in pending:
                super().send(queued)

    async def _start_sender(self) -> None:
        self.sender_task = self.loop.create_task(self.sender(self.client_send))

    async def __call__(self, scope, receive, send) -> None:
        environ = build_environ(scope, Body(self.loop, receive))
        self.client_send = send
        try:
            context = contextvars.copy_context()
            func = functools.partial(context.run, self.wsgi)
            await self.loop.run_in_executor(self.executor, func, environ, self.start_response)
            if self.sender_task is None:
                for message in self.buffered:  # what the application wrote, in one hand-off
                    await send(message)
            else:
                await self.send_queue.put(None)
                await self.sender_task
            if self.exc_info is not None:
                raise self.exc_info[0].with_traceback(self.exc_info[1], self.exc_info[2])
        finally:
            if self.sender_task is not None and not self.sender_task.done():
                self.sender_task.cancel()


class BufferedWSGIMiddleware(WSGIMiddleware):
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            responder = BufferedWSGIResponder(self.app, self.executor, self.send_queue_size)
            return await responder(scope, receive, send)
        return await super().__call__(scope, receive, send)



