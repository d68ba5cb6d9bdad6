"""The metrics tasks are scored with. Protected: a candidate may not edit this file.

``accuracy`` (higher is better) and ``log_loss`` (lower is better) for classification tasks;
``concordance_index`` (Harrell's C, through
lifelines, as FLamby computes it) for survival tasks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, features: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Predicted class per row: a single output is a logit thresholded at 0, else argmax."""
    was_training = model.training
    model.eval()
    predictions = []
    for start in range(0, len(features), batch_size):
        out = model(features[start : start + batch_size])
        if out.ndim == 1 or out.shape[-1] == 1:
            predictions.append((out.reshape(-1) > 0).long())
        else:
            predictions.append(out.argmax(dim=-1))
    model.train(was_training)
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 4096) -> float:
    """Fraction of rows whose predicted class equals the label (``batch_size`` rows at a time)."""
    if len(labels) == 0:
        raise ValueError("cannot compute accuracy on an empty evaluation set")
    predicted = predict(model, features, batch_size)
    return float((predicted == labels.reshape(-1).long().to(predicted.device)).float().mean().item())


@torch.no_grad()
def log_loss(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean cross-entropy of the model's outputs (one logit: binary, else softmax) against the labels."""
    if len(labels) == 0:
        raise ValueError("cannot compute a loss on an empty evaluation set")
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(features), batch_size):
        out = model(features[start : start + batch_size]).float()
        target = labels[start : start + batch_size].to(out.device)
        if out.ndim == 1 or out.shape[-1] == 1:
            loss = nn.functional.binary_cross_entropy_with_logits(
                out.reshape(-1), target.reshape(-1).float(), reduction="sum"
            )
        else:
            loss = nn.functional.cross_entropy(out, target.reshape(-1).long(), reduction="sum")
        total += float(loss)
    model.train(was_training)
    return total / len(labels)


@torch.no_grad()
def risk_scores(model: nn.Module, features: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """One risk score per row (higher: earlier expected event), on the CPU."""
    was_training = model.training
    model.eval()
    scores = [
        model(features[start : start + batch_size]).reshape(-1).float().cpu()
        for start in range(0, len(features), batch_size)
    ]
    model.train(was_training)
    return torch.cat(scores) if scores else torch.empty(0)


def concordance_index(times, risks, events) -> float:
    """Harrell's C of ``risks`` against observed ``times`` with event indicators ``events``.

    The share of comparable pairs (the earlier time is an observed event) that the model
    orders correctly, ties in risk counting one half: lifelines'
    ``concordance_index(times, -risks, events)``, FLamby's metric. A split with no
    comparable pair (no observed event) scores 0.5, chance, the same for every model; so does
    a diverged model whose risks are not finite (it orders no pair, like constant risks).
    """
    from lifelines.utils import concordance_index as lifelines_c_index

    times, risks, events = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (times, risks, events))
    if len(times) == 0:
        raise ValueError("cannot compute a concordance index on an empty evaluation set")
    if not np.isfinite(risks).all():
        return 0.5  # lifelines refuses NaN
    try:
        return float(lifelines_c_index(times, -risks, events))
    except ZeroDivisionError:  # lifelines: "No admissable pairs in the dataset."
        return 0.5


def c_index(model: nn.Module, features: torch.Tensor, times: torch.Tensor, events: torch.Tensor) -> float:
    """The concordance index of ``model``'s risk scores on one client's evaluation split."""
    return concordance_index(times.cpu().numpy(), risk_scores(model, features).numpy(), events.cpu().numpy())
