"""Shadow decisions: what a shadow challenger would have answered, beside what was answered.

One JSON object per line, no prompt text::

    {"ts": ..., "request_id": "r1", "router": "knn", "tenant": "acme",
     "answer": {"version": "3", "model": "gpt-4o-mini", "source": "MODEL"},
     "shadow": {"version": "4", "model": "gpt-4o", "source": "MODEL", "latency_us": 812},
     "agree": false}
"""

from __future__ import annotations

import json
import time

from router_service.domain import Decision, RouteInput

__all__ = ["shadow_record"]


def shadow_record(req: RouteInput, answer: Decision, shadow: Decision) -> str:
    return json.dumps(
        {
            "ts": round(time.time(), 6),
            "request_id": answer.request_id,
            "router": answer.router,
            "tenant": req.tenant,
            "answer": {
                "version": answer.router_version,
                "model": answer.model,
                "source": answer.source.name,
            },
            "shadow": {
                "version": shadow.router_version,
                "model": shadow.model,
                "source": shadow.source.name,
                "latency_us": shadow.latency_us,
            },
            "agree": answer.model == shadow.model,
        },
        separators=(",", ":"),
    )
