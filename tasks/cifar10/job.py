"""CIFAR-10 FedAvg job (NVFlare Recipe API), the reference workflow's default task.

Baseline (the reference's budget): 8 sites with a Dirichlet(0.5) label split, ``moderate_cnn``
(3.5M parameters, cap 5M), SGD lr 0.05 momentum 0.9, batch 64, 4 local epochs per round,
20 rounds, step-weighted FedAvg; the score is the final global model's accuracy averaged
over the sites' test splits. Tensors live on ``--device`` (``auto``: the GPU when there is
one). The data are read from ``--data_root`` (relative paths are taken from the workspace
root). Run it directly: ``python tasks/cifar10/job.py --data_root DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nvflare.apis.dxo import DataKind  # noqa: E402
from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe  # noqa: E402

from tasks.cifar10.data import ensure_dataset  # noqa: E402
from tasks.cifar10.model import DEFAULT_ARCH, build_model, count_parameters  # noqa: E402
from tasks.shared import jobs  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n_clients", type=int, default=8)
    parser.add_argument("--num_rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data_root", default="data/cifar10")
    parser.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of the label split")
    parser.add_argument("--split_seed", type=int, default=0, help="seed of the label split (not the run's seed)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--num_workers", type=int, default=2, help="DataLoader worker processes per client")
    parser.add_argument("--eval_batch_size", type=int, default=1024)
    parser.add_argument("--model_arch", default=DEFAULT_ARCH)
    parser.add_argument("--max_model_params", type=int, default=5_000_000)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="sgd")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--local_epochs", type=float, default=4.0)
    parser.add_argument("--fedprox_mu", type=float, default=0.0)
    parser.add_argument("--augment", action="store_true", help="random crops and flips")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast in local training")
    jobs.add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data_root = Path(args.data_root).expanduser()
    data_root = data_root if data_root.is_absolute() else jobs.TASKS_ROOT / data_root
    try:
        ensure_dataset(data_root)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    model = build_model(args.model_arch, args.max_model_params, seed=args.seed)
    print(f"model {args.model_arch}: {count_parameters(model)} parameters; data {data_root}")
    client_args = {
        "num_clients": args.n_clients,
        "data_root": str(data_root),
        "alpha": args.alpha,
        "split_seed": args.split_seed,
        "seed": args.seed,
        "device": args.device,
        "num_workers": args.num_workers,
        "eval_batch_size": args.eval_batch_size,
        "model_arch": args.model_arch,
        "max_model_params": args.max_model_params,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "local_epochs": args.local_epochs,
        "fedprox_mu": args.fedprox_mu,
        "augment": args.augment,
        "amp": args.amp,
        "scaffold": args.aggregator == "scaffold",
    }
    recipe = FedAvgRecipe(
        name=args.name or f"cifar10_{args.aggregator}_seed{args.seed}",
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
