"""cyllama's OpenAI-compatible Python server on loopback, for the real-model test.

Run as ``python tests/local_model_server.py MODEL.gguf PORT``. Two fixes to cyllama 0.2.18's
pure-Python server (its C server is not in the wheel): it never clears the KV cache between
requests, so every request after the first fails to decode; and it decodes the whole prompt as
one batch, so ``n_batch`` must cover the context or a long system prompt aborts the process.
"""

from __future__ import annotations

import sys
import time

from cyllama.llama.server.python import PythonServer, ServerConfig, ServerSlot

_reset = ServerSlot.reset


def _reset_and_forget(self: ServerSlot) -> None:
    _reset(self)
    self.context.kv_cache_clear()  # the next request starts at position 0 again


def main() -> None:
    model, port = sys.argv[1], int(sys.argv[2])
    ctx = int(sys.argv[3]) if len(sys.argv) > 3 else 8192
    ServerSlot.reset = _reset_and_forget
    config = ServerConfig(model_path=model, host="127.0.0.1", port=port, n_ctx=ctx, n_batch=ctx, n_parallel=1)
    server = PythonServer(config)
    if not server.start():
        sys.exit("cyllama server did not start")
    print(f"ready on http://127.0.0.1:{port}/v1", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
