"""Training with several workers: torch's DistributedDataParallel over the batches one process would take.

The rule (N workers of a ``reportgen.distributed.World``; one process never comes here):

- Every worker draws the same per-epoch order of the train split from the run's seeded generator, the
  order a single process draws (``iterate_batches``' permutation, or its DataLoader's for datasets
  without tensors), and cuts it into the same batches of ``batch_size``. Each worker then takes a
  contiguous, unpadded part of every batch (``shard_bounds`` of the batch: parts differ by at most one
  row). Nothing is padded or repeated, unlike torch's DistributedSampler.
- A worker back-propagates its part's loss as a share of the whole batch's mean: its mean loss times
  (its part's denominator / the batch's denominator), where the denominator is what torch's ``mean``
  reduction divides by (the number of samples; the sum of the class weights of the batch's labels for
  class-weighted cross-entropy). DDP's all-reduce then *sums* the workers' gradients (a communication
  hook, ``sum_gradients``, replaces DDP's average over workers), so parts of unequal size are weighted
  by their sample counts and the gradient is the one a single process takes on the whole batch, up
  to the order of float additions. With a given seed, N workers therefore take the single-process
  steps: the trained weights match the one-process run's to float rounding (float32 on the CPU; the
  rounding grows with epochs), and the same N and seed give the same weights on every run (tested with
  two workers, whose two gradients add up the same whichever comes first).
- A worker whose part of a batch is empty (a last batch smaller than N) runs the batch's first row
  with weight 0, so DDP's all-reduce hears from every worker; it adds nothing to the gradient.
- Every decision is taken from numbers every worker holds after a collective, so all of them decide
  alike: each step's loss is gathered before the backward pass (a non-finite loss on any worker is
  divergence for all, and none of them steps); the weights-finite check is agreed after the epoch;
  the epoch's train and validation statistics (loss, accuracy, RMSE) are reduced over the workers
  (``distributed.reduce_state``, in rank order) before early stopping reads them. The weights are the
  same on every worker (the same summed gradient and optimizer), so the best epoch's weights that
  early stopping restores are too.

Layers that see the batch as a whole (BatchNorm) see each worker's part instead; their running
statistics are rank 0's (DDP broadcasts buffers before each step). Dropout draws its masks from each
worker's torch generator, seeded alike: deterministic for a given N, but not the one-process masks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch
from torch import nn

from reportgen.distributed import World, all_gather_scalars, all_reduce_sum, reduce_state, shard_bounds

if TYPE_CHECKING:
    from reportgen.training import _Diagnostics, _Setup
    from reportgen.types import SplitData


def sum_gradients(process_group, bucket):  # type: ignore[no-untyped-def]
    """DDP communication hook: all-reduce a gradient bucket by SUM, without DDP's division by world size.

    (ProcessGroup | None, dist.GradBucket) -> torch.futures.Future[torch.Tensor]. Left unannotated:
    DDP compares annotations with the real classes, and this module's annotations are strings.
    Each worker's loss is already its share of the whole batch's mean (see the module docstring), so
    the sum over workers is the whole batch's gradient.
    """
    import torch.distributed as dist

    work = dist.all_reduce(bucket.buffer(), group=process_group, async_op=True)
    assert work is not None
    return work.get_future().then(lambda done: done.value()[0])


def has_unused_parameters(model: nn.Module, sample: torch.Tensor) -> bool:
    """True when a forward pass of ``sample`` (a few input rows) leaves a trainable parameter out of the graph.

    Runs in eval mode (no dropout draw, no BatchNorm statistics update) and restores the mode.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            outputs = model(sample)
            grads = torch.autograd.grad(outputs.float().sum(), trainable, allow_unused=True)
    finally:
        model.train(was_training)
    return any(g is None for g in grads)


def wrap(model: nn.Module, world: World, sample: torch.Tensor | None) -> nn.Module:
    """``model`` in a DistributedDataParallel whose gradient all-reduce sums (``sum_gradients``).

    DDP broadcasts rank 0's parameters and buffers on construction. A model with trainable layers its
    forward does not use (found on ``sample``, a few input rows on the worker's device; None: none) gets
    ``find_unused_parameters``, so it trains as in one process (those gradients stay None and the
    gradient-flow check sees them); other models skip that flag's extra graph walk every step.
    """
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [world.device] if world.device.type == "cuda" else None
    ddp = DistributedDataParallel(model, device_ids=device_ids,
                                  find_unused_parameters=sample is not None and has_unused_parameters(model, sample))
    ddp.register_comm_hook(None, sum_gradients)
    return ddp


def _index_batches(split: SplitData, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The global row indices of each shuffled batch, drawn exactly as ``iterate_batches(shuffle=True)`` draws them."""
    tensors = getattr(split.dataset, "tensors", None)
    n = len(split.dataset)  # type: ignore[arg-type]
    if tensors is not None and len(tensors) == 2:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]
        return
    # the same sampler and generator draws as the DataLoader of iterate_batches, over row numbers
    yield from torch.utils.data.DataLoader(range(n), batch_size=batch_size, shuffle=True, generator=generator)  # type: ignore[arg-type]


def _fetch(split: SplitData, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of the given rows, batched as ``iterate_batches`` batches them."""
    tensors = getattr(split.dataset, "tensors", None)
    if tensors is not None and len(tensors) == 2:
        return tensors[0][rows], tensors[1][rows]
    x, y = torch.utils.data.default_collate([split.dataset[int(i)] for i in rows])
    return x, torch.as_tensor(y)


def mean_denominator(loss_name: str, class_weights: torch.Tensor | None, labels: np.ndarray) -> float:
    """What torch's ``mean`` reduction of the training loss divides by, for a batch with these labels.

    The sum of the labels' class weights for class-weighted cross-entropy (torch.nn.CrossEntropyLoss
    with ``weight``), else the number of samples (BCE's ``pos_weight`` does not change its mean).
    """
    if loss_name == "cross_entropy" and class_weights is not None:
        return float(class_weights.detach().cpu().double()[torch.as_tensor(labels, dtype=torch.long)].sum())
    return float(len(labels))


def any_worker(flag: bool, world: World) -> bool:
    """True on every worker when ``flag`` is true on at least one."""
    return bool(all_reduce_sum(np.array([int(flag)]), world)[0] > 0)


def epoch_function(model: nn.Module, world: World, train_split: SplitData) -> Callable[..., dict[str, float | None]]:
    """``training._train_epoch``'s counterpart on ``world``: wraps ``model`` in DDP once, for every epoch."""
    sample = _fetch(train_split, torch.arange(2))[0].to(world.device) if train_split.n >= 2 else None
    ddp_model = wrap(model, world, sample)

    def run(model: nn.Module, optimizer: torch.optim.Optimizer, setup: _Setup, epoch: int,
            facts: _Diagnostics) -> dict[str, float | None]:
        return train_epoch(ddp_model, model, optimizer, setup, epoch, facts, world)

    return run


def train_epoch(
    ddp_model: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, setup: _Setup, epoch: int,
    facts: _Diagnostics, world: World,
) -> dict[str, float | None]:
    """One epoch on this worker's part of every batch: ``training._train_epoch``'s contract, on ``world``.

    ``ddp_model`` is ``wrap(model, world)``; ``model`` the module inside it (gradients, weight checks and
    the validation pass read it). Returns the same history record on every worker.
    """
    from reportgen.outputs import predicted_classes
    from reportgen.training import _EpochStats, _evaluate_pass, finite_or_none, probe_gradients, weights_are_finite

    split = setup.train_split
    model.train()
    stats = _EpochStats(setup.num_classes)
    epoch_step = 0
    for index in _index_batches(split, setup.batch_size, setup.generator):
        start, stop = shard_bounds(len(index), world.rank, world.world_size)
        has_rows = stop > start
        x, y = _fetch(split, index[start:stop] if has_rows else index[:1])
        x, y = x.to(setup.device), y.to(setup.device)
        epoch_step += 1
        outputs = ddp_model(x)
        loss = setup.loss_fn(outputs, y)
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            plain = setup.plain_loss_fn(outputs, y) if setup.weighted else loss.detach()
        # [sum of the plain loss, weighted mean loss] of each worker's part; (0, 0) for an empty part
        local = [float(plain) * (stop - start), float(loss.detach())] if has_rows else [0.0, 0.0]
        parts = all_gather_scalars(local, world)
        if facts.step == 0:
            facts.init_loss = float(sum(float(v) for v in parts[:, 0])) / len(index)
        if not np.isfinite(parts).all():
            facts.diverged = {"epoch": epoch, "step": epoch_step, "global_step": facts.step + 1}
            break
        if has_rows:
            labels = split.labels[index.numpy()]
            share = mean_denominator(setup.loss_name, setup.class_weights, labels[start:stop]) / mean_denominator(
                setup.loss_name, setup.class_weights, labels)
        else:
            share = 0.0
        (loss * share).backward()
        if facts.step == 0:
            facts.gradients = probe_gradients(model)
        optimizer.step()
        facts.step += 1
        if has_rows:
            with torch.no_grad():
                predicted = None if setup.task == "regression" else predicted_classes(
                    outputs, setup.output_kind, setup.positive_index, setup.threshold)
                stats.add(float(plain), y, outputs, predicted)
    stats.state = reduce_state(stats.state, world)  # type: ignore[assignment]
    if any_worker(facts.diverged is None and not weights_are_finite(model), world):
        facts.diverged = {"epoch": epoch, "step": epoch_step, "global_step": facts.step}
    record: dict[str, float | None] = {"epoch": epoch, **stats.summary("train")}
    if facts.diverged is not None:
        record["train_loss"] = None
    elif setup.val_split is not None:
        record.update(_evaluate_pass(model, setup.val_split, setup, world))
    return finite_or_none(record)


def describe(world: World) -> str:
    """The training section's words for how training was spread over the workers."""
    return (f"DistributedDataParallel on {world.world_size} workers ({world.backend}): each batch is split "
            "between the workers and their gradients are summed to the whole batch's gradient")

