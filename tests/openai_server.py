"""A real OpenAI-compatible HTTP server on 127.0.0.1 that replays scripted replies.

Tests give it a list of steps; each POST to ``/v1/chat/completions`` consumes the next
one. A step is a reply (``text`` and/or ``tool_calls``), or a failure (``status`` 500,
``sleep`` for a timeout, ``raw`` for a malformed body, ``drop`` for a connection closed
unanswered). Every request body is recorded, so tests can assert what the model was shown.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tool_call(name: str, arguments, call_id: str | None = None) -> dict:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": call_id or f"call_{name}_{abs(hash(text)) % 10**8}",
        "type": "function",
        "function": {"name": name, "arguments": text},
    }


class ScriptedOpenAI:
    def __init__(self, steps: list[dict]) -> None:
        self.steps = list(steps)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    step = server.steps.pop(0) if server.steps else {"text": "I have nothing more to add."}
                if "sleep" in step:
                    time.sleep(step["sleep"])
                if step.get("drop"):  # close the connection without a response, as a reset does
                    self.close_connection = True
                    return
                if "status" in step:
                    self._send(
                        step["status"], {"error": {"message": "scripted failure", "type": "server_error"}}
                    )
                    return
                if "raw" in step:
                    self._send(200, step["raw"])
                    return
                message = {"role": "assistant", "content": step.get("text")}
                if step.get("tool_calls"):
                    message["tool_calls"] = step["tool_calls"]
                usage = step.get(
                    "usage", {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
                )
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "scripted"),
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls" if step.get("tool_calls") else "stop",
                            }
                        ],
                        "usage": usage,
                    },
                )

            def _send(self, status, payload):
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
