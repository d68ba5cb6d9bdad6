"""The lean site poll (tasks/shared/site_runtime.py) patches two NVFlare names that NVFlare exposes no
setting for. If an NVFlare upgrade renamed them the patch would silently do nothing (the results
stay bit-identical, only slower), so this checks that both still exist with the values we replace."""

from __future__ import annotations

import inspect

from tasks.shared.jobs import LEAN, STOCK


def test_the_nvflare_names_the_client_poll_knob_sets_still_exist():
    from nvflare.app_common.executors.client_api import in_process_backend
    from nvflare.client.in_process.api import InProcessClientAPI

    assert in_process_backend._RESULT_POLL_INTERVAL == STOCK.client_poll_interval == 0.5
    assert "self.result_check_interval = result_check_interval" in inspect.getsource(InProcessClientAPI.__init__)
    assert "self.result_check_interval" in inspect.getsource(InProcessClientAPI.receive) or any(
        "self.result_check_interval" in inspect.getsource(member)
        for _, member in inspect.getmembers(InProcessClientAPI, inspect.isfunction)
        if member.__name__ != "__init__"
    )
    assert LEAN.client_poll_interval < STOCK.client_poll_interval
