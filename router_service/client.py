"""A small synchronous client of the Router API, for the command line and smoke tests."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from router_service.proto import pb, pb_grpc

__all__ = ["RouterClient", "parse_candidates"]


def parse_candidates(spec: str) -> list[pb.Candidate]:
    """``"a,b:0.15:0.6"`` → candidates; optional ``:input:output`` prices in USD per 1M tokens."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, *prices = item.split(":")
        if len(prices) not in (0, 2):
            raise ValueError(f"candidate {item!r}: use NAME or NAME:INPUT_PRICE:OUTPUT_PRICE")
        cand = pb.Candidate(name=name)
        if prices:
            cand.input_price_per_mtok, cand.output_price_per_mtok = map(float, prices)
        out.append(cand)
    return out


class RouterClient:
    """Blocking calls with a deadline (seconds) on one channel."""

    def __init__(self, target: str, timeout_s: float = 5.0) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.RouterStub(self._channel)
        self._timeout = timeout_s

    def route(
        self,
        prompt: str,
        candidates: Sequence[pb.Candidate],
        router: str = "",
        cost_weight: float | None = None,
        request_id: str = "",
    ) -> pb.RouteResponse:
        """``cost_weight=None`` leaves λ unset: the router's calibrated default applies."""
        request = pb.RouteRequest(
            request_id=request_id,
            prompt=prompt,
            candidates=list(candidates),
            router=router,
            policy=pb.Policy(cost_weight=cost_weight),
        )
        return self._stub.Route(request, timeout=self._timeout)

    def list_routers(self) -> pb.ListRoutersResponse:
        return self._stub.ListRouters(pb.ListRoutersRequest(), timeout=self._timeout)

    def close(self) -> None:
        self._channel.close()
