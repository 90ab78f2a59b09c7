"""Decision events, outcome reports and traces for the closed loop and for operators."""

from __future__ import annotations

import re

__all__ = ["TRACEPARENT"]

TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-([0-9a-f]{2})")
"""A W3C ``traceparent`` (version, trace id, parent span id, flags; the flags as group 1),
to be matched whole (``fullmatch``) against a lower-case header value."""
