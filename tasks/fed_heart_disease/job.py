"""Fed-Heart-Disease FedAvg job (NVFlare Recipe API).

FLamby's baseline: features standardised per hospital (by the data bridge), logistic
regression, FedAvg weighted by training samples, Adam lr 0.001, batch 4, 100 local updates per
round, 15 rounds, 4 hospitals; the score is the final global model's accuracy averaged
over the hospitals' test splits. Run it directly: ``python tasks/fed_heart_disease/job.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nvflare.apis.dxo import DataKind  # noqa: E402
from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe  # noqa: E402

from tasks.fed_heart_disease.model import DEFAULT_ARCH, build_model, count_parameters  # noqa: E402
from tasks.shared import jobs  # noqa: E402

NUM_CLIENTS = 4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n_clients", type=int, default=NUM_CLIENTS)
    parser.add_argument("--num_rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model_arch", default=DEFAULT_ARCH)
    parser.add_argument("--max_model_params", type=int, default=0)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--local_steps", type=int, default=100)
    parser.add_argument("--fedprox_mu", type=float, default=0.0)
    jobs.add_common_args(parser, aggregator="sample_weighted")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # A real deployment may federate only some of the hospitals (site-1..site-N, each with its own data).
    if args.n_clients != NUM_CLIENTS and not (args.env == "prod" and 1 <= args.n_clients < NUM_CLIENTS):
        raise SystemExit(f"error: Fed-Heart-Disease has exactly {NUM_CLIENTS} hospitals")
    model = build_model(args.model_arch, args.max_model_params, seed=args.seed)
    print(f"model {args.model_arch}: {count_parameters(model)} parameters")
    client_args = {
        "seed": args.seed,
        "model_arch": args.model_arch,
        "max_model_params": args.max_model_params,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "local_steps": args.local_steps,
        "fedprox_mu": args.fedprox_mu,
        "scaffold": args.aggregator == "scaffold",
    }
    recipe = FedAvgRecipe(
        name=args.name or f"fed_heart_disease_{args.aggregator}_seed{args.seed}",
        min_clients=args.n_clients,
        num_rounds=args.num_rounds,
        model=model,
        train_script=str(Path(__file__).with_name("client.py")),
        train_args=jobs.train_args_string(client_args),
        aggregator=jobs.aggregator_from_args(args),
        aggregator_data_kind=DataKind.WEIGHT_DIFF,
        key_metric=args.metric,
        key_metric_mode=jobs.key_metric_mode(args),
        model_locator=jobs.model_locator(args),  # what the final evaluation scores (jobs.NVFlareKnobs)
    )
    jobs.run(recipe, args, args.n_clients)


if __name__ == "__main__":
    main()
