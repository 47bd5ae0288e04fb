"""Running prepared requests for an HTTP route: the generation service, bridged to asyncio.

`Run` starts `services.generation.stream_many` in a thread of its own (so the event loop,
`/health` among it, never waits for generation, and no shared thread pool is starved) and
hands its events to the route through an asyncio queue. Whoever stops listening (a closed
stream, a client that hangs up on a non-streaming request) ends the run: `close` sets the
cancel event, which frees the rows at the next decode step. Outcomes go to the metrics.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Request

from lora_land.engine.types import GenerationResult, PreparedRequest
from lora_land.errors import UserError
from lora_land.generation import StreamEvent, short
from lora_land.server.errors import ApiError

if TYPE_CHECKING:
    from lora_land.server.metrics import Metrics
    from lora_land.services import Services

_END = object()
DISCONNECT_POLL_S = 0.1


class Run:
    def __init__(
        self,
        services: Services,
        metrics: Metrics,
        route: str,
        prepared: Sequence[PreparedRequest],
    ) -> None:
        self.route = route
        self.metrics = metrics
        self.prepared = list(prepared)
        self.cancel = threading.Event()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._left = len(self.prepared)
        self._lock = threading.Lock()
        self._next_poll = 0.0  # when to ask the server again whether the client is still there
        threading.Thread(target=self._pump, args=(services,), daemon=True).start()

    def _pump(self, services: Services) -> None:
        put = self._put
        try:
            for event in services.generation.stream_many(self.prepared, self.cancel):
                self._record(event)  # here, so abandoned requests are counted too
                put(event)
        except BaseException as e:  # a bug: the route reports it
            put(e)
        finally:
            put(_END)

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (server shutting down)
            self.cancel.set()

    async def next(self, request: Request | None = None) -> StreamEvent | None:
        """The next event (None at the end); with `request`, a client that hangs up while
        we wait cancels the run and ends it."""
        while True:
            # asked on a clock, not only when the queue is quiet: a run that yields a token
            # every few milliseconds never leaves the queue quiet for a whole poll interval
            if request is not None and time.monotonic() >= self._next_poll:
                self._next_poll = time.monotonic() + DISCONNECT_POLL_S
                if await request.is_disconnected():
                    self.close()
                    return None
            try:
                item = await asyncio.wait_for(self._queue.get(), DISCONNECT_POLL_S)
            except TimeoutError:
                continue
            if item is _END:
                return None
            if isinstance(item, BaseException):
                raise item
            return item

    async def events(self, request: Request | None = None) -> AsyncIterator[StreamEvent]:
        try:
            while (event := await self.next(request)) is not None:
                yield event
        finally:
            self.close()

    def _record(self, event: StreamEvent) -> None:
        if not event.done:
            return
        with self._lock:
            self._left -= 1
        adapter = self.prepared[event.index].request.adapter_id
        if event.error is not None:
            self.metrics.outcome(self.route, adapter, type(event.error).__name__)
        elif event.chunk is not None and event.chunk.result is not None:
            self.metrics.observe(self.route, event.chunk.result)

    def close(self) -> None:
        if self._left:
            self.cancel.set()

    async def results(self, request: Request) -> list[GenerationResult]:
        """Every result in order; the first error is raised (the other rows are stopped)."""
        results: dict[int, GenerationResult] = {}
        try:
            while (event := await self.next(request)) is not None:
                if event.error is not None:
                    raise event.error
                if event.chunk is not None and event.chunk.result is not None:
                    results[event.index] = event.chunk.result
        finally:
            self.close()
        if len(results) < len(self.prepared):
            raise UserError("the client went away; the request was stopped")
        return [results[i] for i in range(len(self.prepared))]


async def read_json(http: Request) -> Any:
    raw = await http.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(
            f"the body is not valid JSON ({type(e).__name__}: {short(str(e), 120)})"
        ) from None


async def in_thread(fn, *args):
    """Tokenizing runs off the event loop (prompts are capped, so it is short)."""
    return await anyio.to_thread.run_sync(fn, *args)
