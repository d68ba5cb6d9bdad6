"""Fed-TCGA-BRCA client: NVFlare Client API, FLamby's local recipe for a Cox model.

Each round: receive the global model, load it strictly, take ``--local_steps`` optimiser
updates of the Cox partial-likelihood loss on this region's training patients, and send the
weight DIFF with the number of steps taken and the region's training-sample count (the
weight of FLamby's FedAvg). On an evaluate task, send the concordance index of the received
model on the region's test split.
"""

from __future__ import annotations

import argparse
import copy

import nvflare.client as flare
import torch
from nvflare.app_common.abstract.fl_model import ParamsType

from tasks.fed_tcga_brca.data import load_site
from tasks.fed_tcga_brca.model import DEFAULT_ARCH, build_model, cox_loss
from tasks.shared.evaluation import c_index
from tasks.shared.site_runtime import tune_client_api
from tasks.shared.training import (
    NUM_TRAIN_SAMPLES,
    SCAFFOLD_CTRL_DIFF,
    ScaffoldState,
    batches,
    compute_model_diff,
    local_train,
    make_optimizer,
    seed_everything,
    site_seed,
    state_from_params,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model_arch", default=DEFAULT_ARCH)
    parser.add_argument("--max_model_params", type=int, default=0)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--local_steps", type=int, default=100)
    parser.add_argument("--fedprox_mu", type=float, default=0.0)
    parser.add_argument("--scaffold", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    flare.init()
    tune_client_api()  # NVFlare settings the job asked this site process to apply
    site_name = flare.get_site_name()
    seed = site_seed(args.seed, site_name)
    seed_everything(seed)

    site = load_site(site_name)
    train_x = torch.from_numpy(site.train.features)
    # The loss takes (event, time) per row, as FLamby's does.
    train_truth = torch.stack(
        [torch.from_numpy(site.train.events), torch.from_numpy(site.train.times)], dim=1
    )
    test_x = torch.from_numpy(site.test.features)
    test_t, test_e = torch.from_numpy(site.test.times), torch.from_numpy(site.test.events)
    data = batches(train_x, train_truth, args.batch_size, torch.Generator().manual_seed(seed))

    model = build_model(args.model_arch, args.max_model_params)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.momentum, args.weight_decay)
    scaffold = ScaffoldState(model) if args.scaffold else None
    print(f"{site_name} (region {site.region}): seed={seed} train={len(site.train)} test={len(site.test)}")

    while flare.is_running():
        input_model = flare.receive()
        global_state = state_from_params(input_model.params)
        model.load_state_dict(global_state, strict=True)

        if flare.is_evaluate():
            flare.send(flare.FLModel(metrics={"c_index": c_index(model, test_x, test_t, test_e)}))
            continue

        global_c_index = c_index(model, test_x, test_t, test_e)
        global_model = copy.deepcopy(model).requires_grad_(False)
        meta = {"NUM_STEPS_CURRENT_ROUND": args.local_steps, NUM_TRAIN_SAMPLES: len(site.train)}
        if scaffold is not None:
            scaffold.receive(input_model.meta)
        loss = local_train(
            model, global_model, data, args.local_steps, optimizer, cox_loss, args.fedprox_mu, scaffold
        )
        if scaffold is not None:
            lr = optimizer.param_groups[0]["lr"]
            meta[SCAFFOLD_CTRL_DIFF] = scaffold.update(model, global_state, args.local_steps, lr)
        print(
            f"{site_name} round {input_model.current_round}: global_c_index={global_c_index:.4f} "
            f"train_loss={loss:.4f}"
        )
        flare.send(
            flare.FLModel(
                params=compute_model_diff(model, global_state),
                params_type=ParamsType.DIFF,
                metrics={"c_index": global_c_index},
                meta=meta,
            )
        )


if __name__ == "__main__":
    main()
