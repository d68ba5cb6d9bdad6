"""NVFlare settings a site process applies to itself (the job sets them in its environment).

NVFlare 2.9's in-process Client API polls every 0.5 s, both for the trainer's result
(``client_api/in_process_backend.py``: ``_RESULT_POLL_INTERVAL``) and, in the trainer's
``flare.receive()``, for the next task (``InProcessClientAPI.result_check_interval``).
NVFlare deliberately exposes no setting for it, so on one machine every round waits for
these polls rather than for training. A lean job (``tasks/shared/jobs.py``,
``--client_poll_interval``) asks for a shorter interval through ``AFR_CLIENT_POLL_INTERVAL``;
without the variable nothing changes. Polling sooner changes when a result is noticed, never
what is computed.

Why keep a patch of NVFlare's private names: it is the one lean knob NVFlare offers no setting
for, and it is worth about half a second per round. Measured on the Heart baseline (15 rounds,
lean otherwise, alternating runs in one invocation of ``benchmarks/client_poll.py``, load 20-30
on 2 cores): median round 1.33 and 1.12 s with 0.02 s against 1.80 and 1.62 s with NVFlare's
0.5 s, about 11 s less per candidate, scores identical. Both names are looked up before they
are set, so an NVFlare that renames them gets NVFlare's own polling (slower, never wrong), and
``tests/test_site_runtime.py`` fails on such an upgrade so the knob does not go quietly stale.
"""

from __future__ import annotations

import os

POLL_VAR = "AFR_CLIENT_POLL_INTERVAL"


def tune_client_api() -> None:
    """Apply the requested poll interval to this process's in-process Client API (after ``flare.init()``)."""
    value = os.environ.get(POLL_VAR)
    if not value:
        return
    interval = float(value)
    from nvflare.app_common.executors.client_api import in_process_backend
    from nvflare.client.api import get_context

    context = get_context()

    if hasattr(in_process_backend, "_RESULT_POLL_INTERVAL"):
        in_process_backend._RESULT_POLL_INTERVAL = interval
    api = getattr(context, "api", None)
    if hasattr(api, "result_check_interval"):  # absent for an external-process client
        api.result_check_interval = interval
