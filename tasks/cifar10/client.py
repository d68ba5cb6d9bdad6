"""CIFAR-10 client: NVFlare Client API, a registered CNN trained on this site's Dirichlet share.

Each round: receive the global model, load it strictly, train ``--local_epochs`` passes over
this site's training images (random crop and flip when ``--augment``), fed by a DataLoader
with ``--num_workers`` worker processes, on ``--device`` (``auto``: the GPU when there is
one) with optional bfloat16 autocast (``--amp``), and send the weight DIFF with the number
of optimiser steps taken and the site's training-sample count. On an evaluate task, send
the accuracy of the received model on the site's test split.
"""

from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Iterator

import nvflare.client as flare
import torch
from nvflare.app_common.abstract.fl_model import ParamsType
from torch.utils.data import DataLoader, Dataset

from tasks.cifar10.data import load_site
from tasks.cifar10.model import DEFAULT_ARCH, build_model
from tasks.shared.evaluation import accuracy
from tasks.shared.site_runtime import tune_client_api
from tasks.shared.training import (
    NUM_TRAIN_SAMPLES,
    SCAFFOLD_CTRL_DIFF,
    ScaffoldState,
    compute_model_diff,
    local_train,
    make_optimizer,
    resolve_device,
    seed_everything,
    site_seed,
    state_from_params,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num_clients", type=int, default=8)
    parser.add_argument("--data_root", required=True)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--split_seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--eval_batch_size", type=int, default=1024)
    parser.add_argument("--model_arch", default=DEFAULT_ARCH)
    parser.add_argument("--max_model_params", type=int, default=0)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="sgd")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--local_epochs", type=float, default=4.0)
    parser.add_argument("--fedprox_mu", type=float, default=0.0)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--scaffold", action="store_true")
    return parser.parse_args()


class TrainImages(Dataset):
    """A site's normalised training images; random 4-pixel-padded crops and flips when augmenting.

    The randomness is torch's, which the DataLoader seeds in every worker from its generator,
    so the batches follow from the run's seed whatever the number of workers.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool) -> None:
        self.images, self.labels, self.augment = images, labels, augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.augment:
            padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
            top, left = torch.randint(0, 9, (2,)).tolist()
            image = padded[:, top : top + 32, left : left + 32]
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
        return image, self.labels[index]


def endless(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches for as many steps as asked: a new shuffled pass each time the loader runs out."""
    while True:
        yield from loader


def main() -> None:
    args = parse_args()
    flare.init()
    tune_client_api()  # NVFlare settings the job asked this site process to apply
    site_name = flare.get_site_name()
    seed = site_seed(args.seed, site_name)
    seed_everything(seed)
    device = resolve_device(args.device)

    site = load_site(site_name, args.data_root, args.num_clients, args.alpha, args.split_seed)
    train_x, train_y = torch.from_numpy(site.train.features), torch.from_numpy(site.train.labels)
    test_x, test_y = (
        torch.from_numpy(site.test.features).to(device),
        torch.from_numpy(site.test.labels).to(device),
    )
    loader = DataLoader(
        TrainImages(train_x, train_y, args.augment),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )
    data = endless(loader)
    steps = max(1, math.ceil(args.local_epochs * len(train_y) / args.batch_size))

    model = build_model(args.model_arch, args.max_model_params).to(device)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.momentum, args.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    scaffold = ScaffoldState(model) if args.scaffold else None
    print(
        f"{site_name}: seed={seed} device={device} amp={args.amp} workers={args.num_workers} "
        f"train={len(train_y)} test={len(test_y)} steps/round={steps}"
    )

    while flare.is_running():
        input_model = flare.receive()
        global_state = state_from_params(input_model.params)
        model.load_state_dict(global_state, strict=True)

        if flare.is_evaluate():
            flare.send(
                flare.FLModel(metrics={"accuracy": accuracy(model, test_x, test_y, args.eval_batch_size)})
            )
            continue

        global_accuracy = accuracy(model, test_x, test_y, args.eval_batch_size)
        global_model = copy.deepcopy(model).requires_grad_(False)
        meta = {"NUM_STEPS_CURRENT_ROUND": steps, NUM_TRAIN_SAMPLES: len(train_y)}
        if scaffold is not None:
            scaffold.receive(input_model.meta)
        loss = local_train(
            model, global_model, data, steps, optimizer, loss_fn, args.fedprox_mu, scaffold, device, args.amp
        )
        if scaffold is not None:
            lr = optimizer.param_groups[0]["lr"]
            meta[SCAFFOLD_CTRL_DIFF] = scaffold.update(model, global_state, steps, lr)
        print(
            f"{site_name} round {input_model.current_round}: global_accuracy={global_accuracy:.4f} "
            f"train_loss={loss:.4f} device={next(model.parameters()).device}"
        )
        flare.send(
            flare.FLModel(
                params=compute_model_diff(model, global_state),
                params_type=ParamsType.DIFF,
                metrics={"accuracy": global_accuracy},
                meta=meta,
            )
        )


if __name__ == "__main__":
    main()
