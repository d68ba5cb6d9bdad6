"""A profile may require a sandbox; without one every view says ``sandbox: none``.

The CLI runs as a user types it (a subprocess) with ``AFR_SANDBOX=none``, which makes afr
find no sandbox; the campaign behind ``resume``/``repeat``/``heldout`` is a real one on the
fake runner (which, like a run without bubblewrap, reports ``sandbox: none``). The cockpit
header is checked through Pilot on a fixed campaign directory.
"""

from __future__ import annotations

import json

import pytest
from fakes import FakeRunner
from tui_helpers import afr, fixed_app, fixed_campaign, loaded

from afr_tui.model import CockpitModel
from afr_tui.widgets.header import header_text
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import Event, EventType
from engine.profile import ProfileError, load_profile, parse_profile
from engine.store.gitsafe import run_git
from engine.store.workspace import init_workspace

TAG = "policy-20261125"
PROFILE = "profiles/fed_heart_disease.toml"


def require(root, value: str = "required") -> None:
    path = root / PROFILE
    text = path.read_text()
    assert "\n[run]\n" in text
    path.write_text(text.replace("\n[run]\n", f'\n[run]\nsandbox = "{value}"\n', 1))
    run_git(root, "commit", "-q", "-am", f"the profile's sandbox is {value}")


@pytest.fixture(scope="module")
def required_campaign(tmp_path_factory):
    """A finished two-candidate campaign of a profile that requires a sandbox."""
    root, _ = init_workspace(tmp_path_factory.mktemp("policy") / "ws")
    require(root)
    engine = Campaign(
        root,
        load_profile(root, "fed_heart_disease"),
        TAG,
        CampaignOptions(max_candidates=2, confirm=False),
        ScriptedProposer(),
        run_fn=FakeRunner(),
    )
    engine.start()
    return root


def test_the_profile_field_takes_required_or_preferred(required_campaign):
    text = (required_campaign / PROFILE).read_text()
    assert parse_profile(text).run.sandbox == "required"
    assert parse_profile(text.replace('sandbox = "required"', "")).run.sandbox == "preferred"
    with pytest.raises(ProfileError, match=r"run\.sandbox: .*'always'"):
        parse_profile(text.replace('sandbox = "required"', 'sandbox = "always"'))


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--profile", "fed_heart_disease", "--headless", "--max-candidates", "1", "--tag", "new-20261125"],
        ["resume", TAG, "--headless"],
        ["repeat", TAG, "--top", "1", "--seeds", "42,43"],
        ["heldout", TAG],
    ],
    ids=["run", "resume", "repeat", "heldout"],
)
def test_a_required_sandbox_refuses_to_start_without_one(required_campaign, monkeypatch, command):
    root = required_campaign
    monkeypatch.setenv("AFR_SANDBOX", "none")
    before = sorted(p.relative_to(root) for p in (root / ".afr").rglob("*"))
    done = afr(*command, cwd=root, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "requires a sandbox" in lines[0] and "AFR_SANDBOX=none" in lines[0]
    assert sorted(p.relative_to(root) for p in (root / ".afr").rglob("*")) == before  # nothing written


def test_status_says_sandbox_none_and_every_record_carries_it(required_campaign):
    root = required_campaign
    done = afr("status", TAG, cwd=root)
    assert done.returncode == 0 and "sandbox: none" in done.stdout
    records = [json.loads(line) for line in (root / ".afr/campaigns" / TAG / "candidates.jsonl").open()]
    ran = [r for r in records if "run_status" in r]
    assert ran and all(r["sandbox"] == "none" for r in ran)


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
async def test_the_cockpit_header_names_the_sandbox(tmp_path, sandbox):
    directory = fixed_campaign(tmp_path)
    meta = json.loads((directory / "campaign.json").read_text())
    (directory / "campaign.json").write_text(json.dumps({**meta, "sandbox": sandbox}))
    app = fixed_app(directory)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        header = str(app.query_one("#header").render())
        assert f"sandbox: {sandbox}" in header


def test_one_run_without_a_sandbox_makes_the_header_say_none():
    model = CockpitModel()
    model.apply(Event(EventType.CAMPAIGN_STARTED, {"tag": TAG, "sandbox": "bwrap"}, seq=1))
    assert "sandbox: bwrap" in header_text(model, 0.0).plain
    model.apply(Event(EventType.CANDIDATE_FINISHED, {"id": "c001", "sandbox": "none"}, seq=2))
    model.apply(Event(EventType.CAMPAIGN_RESUMED, {"tag": TAG, "sandbox": "bwrap"}, seq=3))
    assert "sandbox: none" in header_text(model, 0.0).plain
