"""Batches of a split's samples, for training, evaluation and the checks that read inputs."""

from __future__ import annotations

from typing import Iterator

import torch

from reportgen.types import SplitData


def iterate_batches(
    split: SplitData, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) batches; tensor datasets are sliced directly, others go through a DataLoader."""
    dataset = split.dataset
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) == 2:
        x_all, y_all = tensors
        n = len(y_all)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                yield x_all[start : start + batch_size], y_all[start : start + batch_size]
            else:
                index = order[start : start + batch_size]
                yield x_all[index], y_all[index]
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
    for x, y in loader:
        yield x, torch.as_tensor(y)
