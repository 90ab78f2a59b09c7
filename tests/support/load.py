"""A concurrent Route load from the test process: N clients, each on its own channel, calling
one after another until stopped; every status and answer is counted."""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from router_service.proto import pb, pb_grpc


@dataclass
class LoadStats:
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    versions: collections.Counter[str] = field(default_factory=collections.Counter)
    sources: collections.Counter[str] = field(default_factory=collections.Counter)


class RouteLoad:
    """``async with RouteLoad(target, make_request) as load: ...``; ``load.stats`` after."""

    def __init__(
        self,
        target: str,
        make_request: Callable[[str], pb.RouteRequest],
        clients: int = 8,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, str]] = (),
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._target = target
        self._credentials = credentials
        self._options = list(options)
        self._metadata = tuple(metadata)
        self._make = make_request
        self._clients = clients
        self._ids = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = LoadStats()

    async def __aenter__(self) -> RouteLoad:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(self._clients)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, i: int) -> None:
        channel = (
            grpc.aio.insecure_channel(self._target)
            if self._credentials is None
            else grpc.aio.secure_channel(self._target, self._credentials, options=self._options)
        )
        async with channel:
            stub = pb_grpc.RouterStub(channel)
            while not self._stop.is_set():
                request = self._make(f"load-{i}-{next(self._ids)}")
                try:
                    answer = await stub.Route(request, timeout=5.0, metadata=self._metadata)
                except grpc.aio.AioRpcError as exc:
                    self.stats.failures.append(f"{exc.code().name}: {exc.details()}")
                else:
                    self.stats.versions[answer.router_version] += 1
                    self.stats.sources[pb.Source.Name(answer.source)] += 1
                self.stats.calls += 1
