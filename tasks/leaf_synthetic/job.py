"""LEAF Synthetic FedAvg job (NVFlare Recipe API).

1000 LEAF users grouped into ``--n_clients`` NVFlare clients; softmax regression trained
with SGD, one local epoch per round; the score is the final global model's accuracy
averaged over the clients' test samples. Run it directly:
``python tasks/leaf_synthetic/job.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nvflare.apis.dxo import DataKind  # noqa: E402
from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe  # noqa: E402

from tasks.leaf_synthetic.model import DEFAULT_ARCH, build_model, count_parameters  # noqa: E402
from tasks.shared import jobs  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n_clients", type=int, default=8)
    parser.add_argument("--num_rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model_arch", default=DEFAULT_ARCH)
    parser.add_argument("--max_model_params", type=int, default=0)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="sgd")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--local_epochs", type=float, default=1.0)
    parser.add_argument("--fedprox_mu", type=float, default=0.0)
    jobs.add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    model = build_model(args.model_arch, args.max_model_params, seed=args.seed)
    print(f"model {args.model_arch}: {count_parameters(model)} parameters")
    client_args = {
        "num_clients": args.n_clients,
        "seed": args.seed,
        "model_arch": args.model_arch,
        "max_model_params": args.max_model_params,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "local_epochs": args.local_epochs,
        "fedprox_mu": args.fedprox_mu,
        "scaffold": args.aggregator == "scaffold",
    }
    recipe = FedAvgRecipe(
        name=args.name or f"leaf_synthetic_{args.aggregator}_seed{args.seed}",
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
