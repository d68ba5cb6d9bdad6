"""The metric every task is scored with. Protected: a candidate may not edit this file."""

from __future__ import annotations

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


def accuracy(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose predicted class equals the label."""
    if len(labels) == 0:
        raise ValueError("cannot compute accuracy on an empty evaluation set")
    predicted = predict(model, features)
    return float((predicted == labels.reshape(-1).long()).float().mean().item())
