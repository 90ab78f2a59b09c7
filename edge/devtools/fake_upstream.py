"""A small OpenAI-compatible upstream for edge tests, identifying itself in every answer.

Serves ``/v1/chat/completions`` (plain and ``stream: true`` as server-sent events),
``/v1/completions``, ``/v1/embeddings`` and ``/v1/responses``. Each answer names the upstream
(``x-upstream`` header, the ``model`` field is echoed, and the text says ``upstream=NAME``), and
every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeUpstream"]


class FakeUpstream:
    def __init__(self, name: str, delay_s: float = 0.0) -> None:
        self.name = name
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    self._json(
                        {"object": "list", "data": [{"id": upstream.name, "object": "model"}]}
                    )
                else:
                    self._json({"error": {"message": "not found"}}, 404)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode(errors="replace")}
                upstream._record({"path": self.path, "headers": dict(self.headers), "body": body})
                if upstream.delay_s:
                    time.sleep(upstream.delay_s)
                path = self.path.split("?")[0].rstrip("/")
                model = body.get("model", "") if isinstance(body, dict) else ""
                text = f"upstream={upstream.name}"
                if path.endswith("/chat/completions"):
                    if body.get("stream"):
                        self._stream(model, text)
                    else:
                        self._json(_chat(model, text))
                elif path.endswith("/completions"):
                    self._json(
                        {
                            "id": "cmpl-1",
                            "object": "text_completion",
                            "created": 0,
                            "model": model,
                            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                            "usage": _usage(),
                        }
                    )
                elif path.endswith("/embeddings"):
                    self._json(
                        {
                            "object": "list",
                            "model": model,
                            "usage": _usage(),
                            "data": [
                                {
                                    "object": "embedding",
                                    "index": 0,
                                    "embedding": [float(upstream.port % 97), 0.5, 0.25],
                                }
                            ],
                        }
                    )
                elif path.endswith("/responses"):
                    self._json(_response(model, text))
                else:
                    self._json({"error": {"message": f"no route {path}"}}, 404)

            def _json(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("x-upstream", upstream.name)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, model: str, text: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("x-upstream", upstream.name)
                self.send_header("connection", "close")
                self.end_headers()
                for piece in (text[:9], text[9:], None):
                    delta = {"content": piece} if piece is not None else {}
                    chunk = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": model,
                        "choices": [
                            {"index": 0, "delta": delta, "finish_reason": None if piece else "stop"}
                        ],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def _chat(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": _usage(),
    }


def _response(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
    }
