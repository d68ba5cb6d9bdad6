"""``--proposer tpe``: Optuna TPE over the profile's args, re-told from the ledger, through a real campaign
loop with the fake runner (real git, real ledger files)."""

from __future__ import annotations

import warnings

from fakes import FakeRunner
from test_campaign import make, workspace  # noqa: F401 (fixture)

from engine.agent.tpe import TPEProposer, encode
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.profile import load_profile


def test_tpe_resumes_from_the_ledger_with_the_next_proposal_of_an_uninterrupted_run(workspace):  # noqa: F811
    campaign, _ = make(workspace, FakeRunner(), TPEProposer(), max_candidates=8)
    campaign.start()
    records = campaign.final_records()
    finished = [r for r in records.values() if r["status"] in ("keep", "discard", "crash")]
    assert len(finished) == 8
    # What the uninterrupted campaign would propose next, from its state in memory...
    context = campaign.context()
    uninterrupted = TPEProposer()
    expected = uninterrupted.propose(context)
    assert uninterrupted.told == len(finished)  # every finished candidate was re-told
    # ... is what a new engine proposes after resuming from the files alone.
    profile = load_profile(workspace, "fed_heart_disease")
    options = CampaignOptions(max_candidates=9, confirm=False)
    resumed_proposer = TPEProposer()
    resumed = Campaign(workspace, profile, campaign.tag, options, resumed_proposer, run_fn=FakeRunner())
    resumed.resume()
    c009 = resumed.final_records()["c009"]
    assert (c009["args"], c009["description"]) == (expected.args, expected.description)
    assert resumed_proposer.told == len(finished)


def test_tpe_samples_conditional_args_only_under_their_aggregators(workspace):  # noqa: F811
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Optuna warning leaks into a campaign's console
        campaign, _ = make(workspace, FakeRunner(), TPEProposer(mechanisms=False), max_candidates=14)
        campaign.start()
    profile = campaign.profile
    records = list(campaign.final_records().values())[1:]
    assert len({str(sorted(r["args"].items())) for r in records}) == len(records)  # no repeats
    for record in records:
        args = record["args"]
        aggregator = args.get("aggregator", profile.baseline["aggregator"])
        for name in args:
            declared = profile.mutable[name].aggregators if name in profile.mutable else None
            assert declared is None or aggregator in declared, (name, aggregator)
        assert not profile.check_args(args)
        assert record["proposer"] == "tpe" and record["edited_files"] == []


def test_encode_refuses_values_outside_the_space():
    from engine.agent.tpe import NotInSpace
    from engine.store.bundle import bundle_root

    profile = load_profile(bundle_root(), "fed_heart_disease")
    full = {**profile.baseline, "lr": 0.01, "aggregator": "fedavgm", "server_lr": 0.5}
    params, distributions = encode(profile, ["logreg"], [], full, [])
    assert params["lr"] == 0.01 and params["server_lr"] == 0.5 and params["fedprox_mu:on"] is False
    assert "fedadam_beta1" not in params  # conditional on fedadam
    try:
        encode(profile, ["logreg"], [], {**full, "lr": 5.0}, [])
    except NotInSpace as error:
        assert "lr" in str(error)
    else:
        raise AssertionError("lr=5 is outside [1e-5, 1]")
