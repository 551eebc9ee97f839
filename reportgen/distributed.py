"""Scale-out on torch.distributed: the world a run is part of, shards, and the collectives reportgen needs.

A run is either one process (``World.single``: world_size 1, no torch.distributed call is ever made) or
one of ``world_size`` workers of a process group (``join_world``), started by ``reportgen run
--nproc-per-node N`` (reportgen/launch.py) or by torchrun, which both set RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT. The backend is NCCL when every worker has a CUDA device of its own
(``cuda:LOCAL_RANK``) and gloo otherwise (CPU).

Every collective runs under the process group's timeout (``collective_timeout``: 300 s by default,
``REPORTGEN_COLLECTIVE_TIMEOUT_S`` to change it), so a worker whose peer died raises instead of
waiting forever, and a CI job can never hang on a lost worker. NCCL honours the timeout through its
asynchronous error handling (on by default in the torch versions reportgen supports).

The collectives here work on NumPy arrays and return NumPy arrays; each one is a no-op on a
single-process world. Every worker must call them in the same order (the usual torch.distributed rule).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from reportgen.errors import ConfigError
from reportgen.vocabulary import ExitCode
from reportgen.types import Predictions, SplitData

TIMEOUT_ENV = "REPORTGEN_COLLECTIVE_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0
"""Long enough for rank 0 to load a large table while the others wait at the first collective."""
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1.0, 86_400.0
"""Bounds of REPORTGEN_COLLECTIVE_TIMEOUT_S: below a second a healthy collective times out (c10d fails with a
long trace); beyond a day a lost worker holds the job for good, and inf or 1e300 overflow the timedelta."""
_UINT64_MAX = np.iinfo(np.uint64).max


@dataclass(frozen=True)
class World:
    """The processes a run is spread over, seen from one of them.

    ``backend`` is None for a single process, else "gloo" or "nccl"; ``device`` is where this worker
    runs its model (and, for NCCL, where collective tensors must live).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @classmethod
    def single(cls, device: torch.device | str = "cpu") -> World:
        """The world of a plain one-process run: no process group, every collective a no-op."""
        return cls(rank=0, world_size=1, local_rank=0, device=torch.device(device), backend=None)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only worker that runs the checks and writes the report."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when collectives talk to other processes."""
        return self.backend is not None and self.world_size > 1

    @property
    def comm_device(self) -> torch.device:
        """Where tensors handed to collectives must be: the worker's GPU for NCCL, the CPU for gloo."""
        return self.device if self.backend == "nccl" else torch.device("cpu")


def collective_timeout() -> _dt.timedelta:
    """The timeout of every collective: ``REPORTGEN_COLLECTIVE_TIMEOUT_S`` seconds, default 300.

    Raises ConfigError when the variable is not a number of seconds from MIN_TIMEOUT_S to MAX_TIMEOUT_S.
    """
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return _dt.timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not MIN_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S:  # also false for nan
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds from "
                          f"{MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} (a day)")
    return _dt.timedelta(seconds=seconds)


def environment_world_size(environ: dict[str, str] | None = None) -> int:
    """WORLD_SIZE as set by the launcher or torchrun (1 when unset); ConfigError when malformed."""
    environ = dict(os.environ) if environ is None else environ
    text = environ.get("WORLD_SIZE", "1")
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise ConfigError(f"WORLD_SIZE={text!r}: expected a positive integer")
    return size


def _env_int(environ: dict[str, str], name: str, upper: int) -> int:
    text = environ.get(name)
    try:
        value = int(text) if text is not None else -1
    except ValueError:
        value = -1
    if not 0 <= value < upper:
        raise ConfigError(f"{name}={text!r}: expected an integer in [0, {upper}) with WORLD_SIZE={upper}")
    return value


def choose_device(device_name: str, local_rank: int, local_world_size: int) -> tuple[torch.device, str]:
    """(device, backend) for a worker: ``cuda:LOCAL_RANK`` with NCCL when the config allows CUDA and
    this node has a GPU for each of its ``local_world_size`` workers, else the CPU with gloo.

    The choice depends only on facts every worker of a node shares, so all of them pick the same
    backend (a group mixing NCCL and gloo would fail at its first collective). ConfigError when the
    config asks for ``cuda`` and there are fewer GPUs than workers on this node.
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    wants_cuda = device_name == "auto" or device_name.startswith("cuda")
    if wants_cuda and gpus >= local_world_size:
        return torch.device("cuda", local_rank), "nccl"
    if device_name.startswith("cuda"):
        raise ConfigError(f"device {device_name!r}: {local_world_size} workers on this machine but {gpus} CUDA device(s); "
                          "start at most one worker per GPU or use device: cpu")
    if device_name == "mps":
        raise ConfigError("device 'mps' cannot be used with several workers; use device: cpu or auto")
    return torch.device("cpu"), "gloo"


@contextlib.contextmanager
def join_world(device_name: str, environ: dict[str, str] | None = None) -> Iterator[World]:
    """Join the process group described by RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT.

    Yields ``World.single`` (and calls nothing in torch.distributed) when WORLD_SIZE is unset or 1.
    The group is destroyed on exit, also after an exception. Raises ConfigError on malformed
    variables; joining waits at most ``collective_timeout()`` for the other workers.
    """
    environ = dict(os.environ) if environ is None else environ
    world_size = environment_world_size(environ)
    if world_size == 1:
        yield World.single("cpu")
        return
    import torch.distributed as dist

    rank = _env_int(environ, "RANK", world_size)
    local_rank = _env_int(environ, "LOCAL_RANK", world_size) if "LOCAL_RANK" in environ else rank
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not environ.get(name):
            raise ConfigError(f"WORLD_SIZE={world_size} but {name} is not set; start workers with reportgen run --nproc-per-node or torchrun")
    local_world_size = _env_int(environ, "LOCAL_WORLD_SIZE", world_size + 1) if "LOCAL_WORLD_SIZE" in environ else world_size
    device, backend = choose_device(device_name, local_rank, max(local_world_size, local_rank + 1))
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                            timeout=collective_timeout())
    store = dist.distributed_c10d._get_default_store()
    try:
        yield World(rank=rank, world_size=world_size, local_rank=local_rank, device=device, backend=backend)
    except BaseException as exc:
        from reportgen.interrupts import stopping

        stopping()  # the run fails or stops: a launcher's SIGTERM now must not replace its cause
        cause = _cause_of_stop(exc, rank, store)
        if cause is exc:
            raise
        raise cause from (None if cause.__traceback__ is not None else exc)
    finally:
        del store  # the group's last reference from here: rank 0's store server goes with the group
        dist.destroy_process_group()


FAILURE_KEY = "reportgen/first-failure"
"""Key in the process group's store: ``{"rank": r, "code": c}`` of the first worker that failed with an error of its own."""
_STORE_ASK_S = 5.0
"""How long a stopping worker waits for the store's answer (its host, rank 0 or torchrun's agent, may be gone)."""


def _cause_of_stop(exc: BaseException, rank: int, store: object) -> BaseException:
    """Why this worker stops, as the exception to end it with; ``exc`` is what reached ``join_world``.

    A worker that failed with an error of its own records it in the store (first one wins) before it leaves
    the group, where the store outlives it (``_store_host_alive``: under reportgen's launcher rank 0 may
    already have exited with the same input error, and asking its store prints torch's warning on stderr),
    so before its peers can see anything of it: their collectives fail only once its connections
    close, and torchrun SIGTERMs them only once it has exited. A worker that sees only an echo of a failure
    (a collective whose peer left, a stop signal) ends with the recorded one as :class:`PeerFailed`.
    An error whose clean-up a stop signal cut short is still the cause (the signal is torchrun's reaction).
    """
    from reportgen.errors import PeerFailed, ReportgenError
    from reportgen.launch import lost_peer

    own = _own_error(exc)
    if own is not None:
        code = own.exit_code if isinstance(own, ReportgenError) else ExitCode.RUNTIME_ERROR
        if not _store_host_alive(rank):  # reportgen's launcher reads each worker's own record instead
            return own
        with contextlib.suppress(Exception):
            store.set_timeout(_dt.timedelta(seconds=_STORE_ASK_S))  # type: ignore[attr-defined]
            store.compare_set(FAILURE_KEY, "", json.dumps({"rank": rank, "code": int(code)}))  # type: ignore[attr-defined]
        return own
    if not (isinstance(exc, KeyboardInterrupt) or lost_peer(exc)) or not _store_host_alive(rank):
        return exc
    try:
        store.set_timeout(_dt.timedelta(seconds=_STORE_ASK_S))  # type: ignore[attr-defined]
        if not store.check([FAILURE_KEY]):  # type: ignore[attr-defined]
            return exc
        first = json.loads(store.get(FAILURE_KEY))  # type: ignore[attr-defined]
        return PeerFailed(int(first["rank"]), int(first["code"]))
    except Exception:  # the store's host is gone (it failed first itself): what this worker saw is all it knows
        return exc


def _store_host_alive(rank: int) -> bool:
    """True when the group's store outlives every worker but this one: torchrun's agent hosts it, or this is
    rank 0, which hosts it itself. Asking a store whose host has exited prints torch's warning and a C++ trace
    on stderr; a stopping worker of another rank does not ask (reportgen's launcher sorts the causes itself)."""
    return rank == 0 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() in ("true", "1")


def _own_error(exc: BaseException) -> BaseException | None:
    """The worker's own error in ``exc`` or behind the stop signal that interrupted its clean-up; None if none.

    An exception is the run's when it had unwound as far as ``exc`` did (the frame of the ``with
    join_world`` block heads both tracebacks): an error that library code was handling when the signal came
    (a fallback import, a retry) has a traceback of that library's frames only, and is no cause.
    """
    from reportgen.launch import lost_peer

    if not isinstance(exc, KeyboardInterrupt):
        return None if lost_peer(exc) else exc
    head = exc.__traceback__.tb_frame if exc.__traceback__ is not None else None
    seen: set[int] = set()
    context = exc.__context__
    while context is not None and id(context) not in seen:
        seen.add(id(context))
        if not isinstance(context, KeyboardInterrupt):
            same_level = context.__traceback__ is not None and context.__traceback__.tb_frame is head
            return context if same_level and not lost_peer(context) else None
        context = context.__context__
    return None


# --------------------------------------------------------------------------- shards


def shard_bounds(n: int, rank: int, world_size: int, align: int = 1) -> tuple[int, int]:
    """[start, stop) of worker ``rank``'s contiguous shard of ``n`` rows: unpadded, no row twice.

    Rows are dealt in blocks of ``align`` (e.g. the batch size, so each shard's batches are exactly the
    single-process run's batches); the first ``blocks % world_size`` workers get one block more, so
    shard lengths differ by less than 2 x align (the last block may be partial). Unlike
    torch's DistributedSampler nothing is padded or repeated, so metrics over the union are exact.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    if n < 0 or align < 1:
        raise ValueError("n must be >= 0 and align >= 1")
    blocks = -(-n // align)
    base, extra = divmod(blocks, world_size)
    first = rank * base + min(rank, extra)
    last = first + base + (1 if rank < extra else 0)
    return min(first * align, n), min(last * align, n)


@dataclass(frozen=True)
class ShardPlan:
    """Which rows of each split this worker reads: a contiguous, unpadded shard aligned to the scoring batch.

    ``batch_size`` is data.batch_size; the alignment is ``evaluation.inference_batch_size(batch_size,
    input_shape)``, the batch evaluate() scores in, so each worker's scoring batches are exactly batches
    of the single-process run (per-sample outputs bit-identical). The loaders know the input shape before
    they read any row (npz: the member header; tables and factories read everything first).
    """

    world: World
    batch_size: int

    def align(self, input_shape: tuple[int, ...]) -> int:
        """Rows per block dealt to the workers: the scoring batch for inputs of ``input_shape`` (per sample)."""
        from reportgen.evaluation import inference_batch_size

        return inference_batch_size(self.batch_size, input_shape)

    def bounds(self, n: int, input_shape: tuple[int, ...]) -> tuple[int, int]:
        """[start, stop) of this worker's rows of a split of ``n`` rows (``shard_bounds``)."""
        return shard_bounds(n, self.world.rank, self.world.world_size, align=self.align(input_shape))


def first_flagged(flags: np.ndarray, offset: int, world: World) -> tuple[int, int]:
    """(global index of the first True of ``flags`` over every worker's shard, number of Trues over every worker).

    ``flags`` is this worker's boolean mask over its rows, whose first lies at global index ``offset``.
    Returns (-1, 0) when no worker has a True. The same on every worker, so all of them raise the
    same error naming the same global row as a single-process read would.
    """
    index, count, _ = first_flagged_value(flags, np.zeros(len(flags)), offset, world)
    return index, count


def first_flagged_value(flags: np.ndarray, values: np.ndarray, offset: int, world: World) -> tuple[int, int, float]:
    """``first_flagged`` with the float64 ``values[i]`` at the first True (0.0 when none), from the worker holding it."""
    flags = np.asarray(flags, dtype=bool).reshape(-1)
    hits = np.flatnonzero(flags)
    local = [float(offset + hits[0]) if len(hits) else -1.0, float(len(hits)),
             float(np.asarray(values).reshape(-1)[hits[0]]) if len(hits) else 0.0]
    rows = all_gather_scalars(local, world)
    found = rows[rows[:, 0] >= 0]
    count = int(rows[:, 1].sum())
    if not len(found):
        return -1, 0, 0.0
    first = found[np.argmin(found[:, 0])]
    return int(first[0]), count, float(first[2])


def first_message(message: str | None, world: World) -> str | None:
    """The ``message`` of the lowest-ranked worker that has one, or None when none has; the same on every worker.

    For an error found by only some workers (a read that fails in one shard) that every worker must raise
    alike, as a single process would: the lowest rank's shard comes first in the split.
    """
    if not world.distributed:
        return message
    flagged = np.flatnonzero(all_gather_scalars([message is not None], world, dtype=np.int64)[:, 0])
    if not len(flagged):
        return None
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=int(flagged[0]), device=world.comm_device)
    return box[0]


def global_max(value: int, world: World) -> int:
    """The largest of every worker's ``value`` (an int64)."""
    return int(all_gather_scalars([value], world, dtype=np.int64).max())


# --------------------------------------------------------------------------- collectives


def _tensor(array: np.ndarray, world: World) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(world.comm_device)


def all_gather_scalars(values: Sequence[float] | np.ndarray, world: World, dtype: type = np.float64) -> np.ndarray:
    """(world_size, k) array: row r holds worker r's ``values`` (k the same on every worker)."""
    local: np.ndarray = np.asarray(values, dtype=dtype).reshape(1, -1)
    if not world.distributed:
        return local
    import torch.distributed as dist

    tensor = _tensor(local, world)
    parts = [torch.empty_like(tensor) for _ in range(world.world_size)]
    dist.all_gather(parts, tensor)
    return torch.cat(parts).cpu().numpy()


def all_gather_objects(value: object, world: World) -> list[object]:
    """Every worker's ``value`` (picklable, small), in rank order; ``[value]`` in one process."""
    if not world.distributed:
        return [value]
    import torch.distributed as dist

    parts: list[object] = [None] * world.world_size
    dist.all_gather_object(parts, value)
    return parts


def all_reduce_sum(array: np.ndarray, world: World) -> np.ndarray:
    """Element-wise sum over workers of an integer array (int64, exact; every worker gets the sum).

    Floats are not summed here: a float all_reduce adds in an order the backend chooses, so results
    would depend on the world size; use ``all_gather_scalars`` and add in rank order instead.
    """
    local = np.asarray(array)
    if not np.issubdtype(local.dtype, np.integer) and local.dtype != np.bool_:
        raise TypeError("all_reduce_sum takes integer arrays; gather floats and add them in rank order")
    local = local.astype(np.int64)
    if not world.distributed:
        return local
    import torch.distributed as dist

    tensor = _tensor(local, world)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def reduce_state(state: object, world: World) -> object:
    """The merge over all workers of a ClassificationState or RegressionState (a new object; same on every worker).

    Counts (confusion matrix, n) are summed exactly with an int64 all_reduce; the float fields are
    gathered as float64 and merged in rank order with the state's own ``merge``, so the result is the
    same on every worker and for a given world size. Raises TypeError for another type.
    """
    from reportgen.metrics import ClassificationState, RegressionState

    if isinstance(state, ClassificationState):
        counts = all_reduce_sum(np.append(state.confusion.reshape(-1), state.n), world)
        loss_sums = all_gather_scalars([state.loss_sum], world)[:, 0]
        c = state.num_classes
        merged = ClassificationState(c, confusion=counts[:-1].reshape(c, c).copy(), n=int(counts[-1]))
        merged.loss_sum = float(sum(float(v) for v in loss_sums))
        return merged
    if isinstance(state, RegressionState):
        fields = ("n", "sum_squared_error", "sum_abs_error", "target_mean", "target_m2", "target_min", "target_max", "loss_sum")
        rows = all_gather_scalars([float(getattr(state, f)) for f in fields], world)
        merged_regression = RegressionState()
        for row in rows:
            part = RegressionState(int(row[0]), *(float(v) for v in row[1:]))
            merged_regression.merge(part)
        return merged_regression
    raise TypeError(f"reduce_state: no reduction for {type(state).__name__}")


def gather_rows(array: np.ndarray, world: World, dst: int = 0) -> np.ndarray | None:
    """Concatenate every worker's rows (axis 0, any length, same trailing shape and dtype) in rank order on ``dst``.

    Returns the (n_total, ...) array on ``dst`` and None on the other workers (on a single process,
    ``array`` itself). Lengths are all-gathered first, then each worker sends its rows padded to the
    longest shard. Memory on ``dst``: world_size x max shard length rows, i.e. about n_total x C x 4
    bytes for float32 class probabilities (8 bytes per class for 2M rows x 2 classes = 16 MB); the
    rows are joined in that buffer, and the array returned is a view of it. The other workers hold only
    their shard (and a padded copy when theirs is shorter than the longest). Booleans travel as uint8.
    """
    local = np.asarray(array)
    if not world.distributed:
        return local
    import torch.distributed as dist

    dtype = local.dtype
    wire = local.astype(np.uint8) if dtype == np.bool_ else local
    lengths = all_gather_scalars([wire.shape[0]], world, dtype=np.int64)[:, 0]
    longest = int(lengths.max())
    if wire.shape[0] < longest:
        padded = np.zeros((longest, *wire.shape[1:]), dtype=wire.dtype)
        padded[: wire.shape[0]] = wire
        wire = padded
    tensor = _tensor(wire, world)
    # dst receives into consecutive slices of one buffer, then moves each worker's rows down over the padding:
    # no second, concatenated copy of the gathered rows
    buffer = torch.empty((world.world_size * longest, *tensor.shape[1:]), dtype=tensor.dtype,
                         device=tensor.device) if world.rank == dst else None
    parts = list(buffer.split(longest)) if buffer is not None and longest else None
    if buffer is not None and not longest:
        parts = [torch.empty_like(tensor) for _ in range(world.world_size)]
    dist.gather(tensor, gather_list=parts, dst=dst)
    if buffer is None:
        return None
    joined = buffer.cpu().numpy()
    at = 0
    for rank, k in enumerate(int(k) for k in lengths):
        if at != rank * longest:
            joined[at:at + k] = joined[rank * longest:rank * longest + k].copy()
        at += k
    joined = joined[:at]
    return joined.astype(np.bool_) if dtype == np.bool_ else joined


def broadcast_module(module: torch.nn.Module, world: World) -> None:
    """Overwrite every parameter and buffer with rank 0's, so all workers evaluate the same model."""
    if not world.distributed:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            staged = tensor.detach().to(world.comm_device).contiguous()
            dist.broadcast(staged, src=0)
            if staged.data_ptr() != tensor.data_ptr():
                tensor.copy_(staged)


# --------------------------------------------------------------------------- hashing, exchange, sampling


def mix64(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """SplitMix64 finaliser of ``values ^ seed`` (uint64 in, uint64 out): a fixed, well-spread hash.

    Source: Steele, Lea, Flood, "Fast splittable pseudorandom number generators" (OOPSLA 2014).
    """
    z = np.asarray(values).astype(np.uint64) ^ np.uint64(seed % 2**64)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def as_columns(values: np.ndarray, n: int) -> np.ndarray:
    """``values`` as an (n, k) int64 array: a 2-d array of n rows is kept (also when n is 0, where a
    reshape to (0, -1) is undefined), anything else is reshaped to n rows."""
    array = np.asarray(values, dtype=np.int64)
    return array if array.ndim == 2 and array.shape[0] == n else array.reshape(n, -1)


def exchange_by_hash(hashes: np.ndarray, columns: np.ndarray | None, world: World) -> tuple[np.ndarray, np.ndarray | None]:
    """Send each row to worker ``hash % world_size``; return the (hashes, columns) this worker receives.

    ``hashes`` are uint64 row hashes (n,), ``columns`` optional int64 payload (n, k) such as a split
    tag or a label. Equal hashes from any shard meet on one worker, so overlaps and conflicting labels
    are found locally there, each row crossing the network once (one ``all_to_all_single`` of split
    counts, one of the rows; gloo and NCCL both provide it), never every hash to every worker.
    Received rows are ordered by source rank, then by source position; the arrays returned are views
    of one received (m, k + 1) int64 table. A caller that can drop its own ``hashes`` and ``columns``
    before the rows travel calls ``pack_by_destination`` and ``exchange_packed`` instead (less memory).
    """
    if not world.distributed:
        hashes = np.asarray(hashes, dtype=np.uint64).reshape(-1)
        return hashes, (None if columns is None else as_columns(columns, hashes.size))
    got_hashes, payload = exchange_packed(pack_by_destination(hashes, columns, world), world)
    return got_hashes, (None if columns is None else payload)


class Outbox:
    """Rows packed for ``exchange_packed``: an (n, k + 1) int64 table (the hash, then the payload) sorted by
    destination worker, and the rows per destination. ``exchange_packed`` empties it once the rows are sent."""

    def __init__(self, rows: np.ndarray | None, send_counts: np.ndarray) -> None:
        self.rows, self.send_counts = rows, send_counts


def pack_by_destination(hashes: np.ndarray, columns: np.ndarray | None, world: World) -> Outbox:
    """The rows of ``exchange_by_hash`` packed for sending: one (n, k + 1) int64 table, filled column by column
    (no reordered copy of the whole payload beside it). On one process the table is the rows in their order."""
    hashes = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    payload = np.zeros((hashes.size, 0), dtype=np.int64) if columns is None else as_columns(columns, hashes.size)
    destination = (hashes % np.uint64(world.world_size)).astype(np.int64)
    send_counts = np.bincount(destination, minlength=world.world_size).astype(np.int64)
    order = np.argsort(destination, kind="stable")
    del destination
    rows = np.empty((hashes.size, payload.shape[1] + 1), dtype=np.int64)
    rows[:, 0] = hashes.view(np.int64)[order]
    for column in range(payload.shape[1]):
        rows[:, column + 1] = payload[:, column][order]
    return Outbox(rows, send_counts)


def exchange_packed(outbox: Outbox, world: World) -> tuple[np.ndarray, np.ndarray]:
    """Send packed rows (``pack_by_destination``) and return (hashes (m,) uint64, payload (m, k) int64) received
    here, views of the received table. The outbox's table is released as soon as it has been sent."""
    rows, outbox.rows = outbox.rows, None
    assert rows is not None, "an Outbox is sent once"
    if not world.distributed:
        return rows[:, 0].view(np.uint64), rows[:, 1:]
    import torch.distributed as dist

    send_counts = outbox.send_counts
    recv_counts_t = torch.empty(world.world_size, dtype=torch.int64, device=world.comm_device)
    dist.all_to_all_single(recv_counts_t, _tensor(send_counts, world))
    recv_counts = recv_counts_t.cpu().numpy()
    received = torch.empty((int(recv_counts.sum()), rows.shape[1]), dtype=torch.int64, device=world.comm_device)
    dist.all_to_all_single(received, _tensor(rows, world), output_split_sizes=recv_counts.tolist(),
                           input_split_sizes=send_counts.tolist())
    del rows
    table = received.cpu().numpy()
    return table[:, 0].view(np.uint64), table[:, 1:]


PRESENCE_SLOTS_PER_ROW = 16
"""Slots per row of a presence map (``HashPresence``): about 1 in 16 of the rows that meet nothing still travel."""
PRESENCE_MAX_BITS = 28
"""Largest presence map: 2**28 slots (32 MiB packed)."""
PRESENCE_GATHER_BYTES = 4 * 2**20
"""Bytes of presence maps one worker sends per all_gather (the maps are gathered in slices of this size)."""


def presence_bits(rows: int) -> int:
    """log2 of the slots of a presence map for ``rows`` hashes (every worker's, in all): PRESENCE_SLOTS_PER_ROW
    slots per row, at least 2**10 and at most 2**PRESENCE_MAX_BITS."""
    return int(min(PRESENCE_MAX_BITS, max(10, int(np.ceil(np.log2(max(1, rows * PRESENCE_SLOTS_PER_ROW)))))))


@dataclass(frozen=True)
class HashPresence:
    """Which slots of 2**bits (a 64-bit hash's top ``bits`` bits) hold a hash on any worker (``anywhere``) and
    which hold two or more over all workers (``repeated``), as packed (2**bits / 8,) uint8 bitmaps.

    A filter, not a set: a hash absent from every worker is in ``anywhere`` only when another hash shares its
    slot, never the other way round, so rows whose hash is not in the map can be left out of a meeting
    without changing what it finds (``exchange_by_hash`` then moves only the rows that may meet another).
    """

    bits: int
    anywhere: np.ndarray
    repeated: np.ndarray

    def slots(self, hashes: np.ndarray) -> np.ndarray:
        return (np.asarray(hashes, dtype=np.uint64) >> np.uint64(64 - self.bits)).astype(np.int64)

    def contains(self, hashes: np.ndarray, which: str = "anywhere") -> np.ndarray:
        """(n,) bool: whether each hash's slot is set in the ``anywhere`` or ``repeated`` map."""
        bitmap = self.anywhere if which == "anywhere" else self.repeated
        slot = self.slots(hashes)
        return ((bitmap[slot >> 3] >> (slot & 7).astype(np.uint8)) & 1).astype(bool)


def hash_presence(hashes: np.ndarray, bits: int, world: World, repeats: bool = True) -> HashPresence:
    """The HashPresence of every worker's ``hashes`` (uint64, (n,) here), with 2**bits slots (``presence_bits``,
    the same on every worker). The packed maps are all-gathered in slices of PRESENCE_GATHER_BYTES: this worker
    holds its maps (2**bits / 8 bytes each) and world_size slices at a time.
    ``repeats=False`` leaves the ``repeated`` map empty (it costs a sort of the slots)."""
    slot = (np.asarray(hashes, dtype=np.uint64) >> np.uint64(64 - bits)).astype(np.int64)
    size = 2 ** bits // 8
    maps = np.zeros((2 if repeats else 1, size), dtype=np.uint8)
    np.bitwise_or.at(maps[0], slot >> 3, np.left_shift(1, (slot & 7).astype(np.uint8), dtype=np.uint8))
    if repeats:
        ordered = np.sort(slot)
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        np.bitwise_or.at(maps[1], twice >> 3, np.left_shift(1, (twice & 7).astype(np.uint8), dtype=np.uint8))
        del ordered, twice
    del slot
    # gathered a slice at a time (PRESENCE_GATHER_BYTES per worker) and merged in place of this worker's maps
    step = max(1, PRESENCE_GATHER_BYTES // maps.shape[0])
    for start in range(0, size, step):
        stop = min(size, start + step)
        every = all_gather_scalars(maps[:, start:stop].reshape(-1), world, dtype=np.uint8).reshape(-1, maps.shape[0], stop - start)
        anywhere = every[0, 0].copy()
        repeated = every[0, 1].copy() if repeats else None
        for rank in range(1, every.shape[0]):
            if repeated is not None:  # set on this worker twice, or on it and an earlier one
                repeated |= every[rank, 1] | (anywhere & every[rank, 0])
            anywhere |= every[rank, 0]
        maps[0, start:stop] = anywhere
        if repeated is not None:
            maps[1, start:stop] = repeated
    return HashPresence(bits, maps[0], maps[1] if repeats else np.zeros(size, dtype=np.uint8))


def count_overlap(train_hashes: np.ndarray, test_hashes: np.ndarray, world: World) -> int:
    """Number of test rows (over all shards) whose hash also occurs among the train rows of any shard."""
    tag = np.concatenate([np.zeros(len(train_hashes), np.int64), np.ones(len(test_hashes), np.int64)])
    hashes, tags = exchange_by_hash(np.concatenate([np.asarray(train_hashes, np.uint64), np.asarray(test_hashes, np.uint64)]), tag[:, None], world)
    assert tags is not None
    is_test = tags[:, 0] == 1
    local = int(np.isin(hashes[is_test], hashes[~is_test]).sum())
    return int(all_reduce_sum(np.array([local]), world)[0])


def count_conflicting_labels(hashes: np.ndarray, labels: np.ndarray, world: World) -> int:
    """Number of distinct row hashes (over all shards) that occur with more than one label."""
    got, columns = exchange_by_hash(hashes, np.asarray(labels, np.int64)[:, None], world)
    assert columns is not None
    pairs = np.unique(np.stack([got.view(np.int64), columns[:, 0]], axis=1), axis=0)
    _, per_hash = np.unique(pairs[:, 0], return_counts=True)
    return int(all_reduce_sum(np.array([int((per_hash > 1).sum())]), world)[0])


def sample_global_rows(n_total: int, start: int, stop: int, size: int, seed: int, world: World) -> np.ndarray:
    """The ``size`` global row indices (sorted) with the smallest ``mix64(row, seed)``, the same on every worker.

    Each worker hashes only its rows [start, stop) and offers its ``size`` smallest; the union's
    ``size`` smallest are chosen (ties by row index). The sample depends on n_total, size and seed,
    never on the number of workers or the shard bounds. O(rows/world_size) per worker.
    """
    size = max(0, min(size, n_total))
    rows = np.arange(start, stop, dtype=np.int64)
    keys = mix64(rows.astype(np.uint64), seed)
    take = min(size, rows.size)
    if take < rows.size:
        chosen = np.argpartition(keys, take - 1)[:take] if take else np.array([], dtype=np.int64)
    else:
        chosen = np.arange(rows.size)
    offered = np.full((size, 2), -1, dtype=np.int64)
    offered[:take, 0] = keys[chosen].view(np.int64)
    offered[:take, 1] = rows[chosen]
    if world.distributed:
        every = all_gather_scalars(offered.reshape(-1), world, dtype=np.int64).reshape(-1, 2)
    else:
        every = offered
    every = every[every[:, 1] >= 0]
    order = np.lexsort((every[:, 1], every[:, 0].view(np.uint64)))
    return np.sort(every[order[:size], 1])


def sample_mask(global_rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for rows kept by a Bernoulli(``fraction``) sample decided by ``mix64(row, seed)`` alone.

    Each worker evaluates it on its own global row indices, with no communication; a row's fate never
    depends on the world size.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must lie in [0, 1]")
    if fraction == 1.0:
        return np.ones(np.asarray(global_rows).shape, dtype=bool)
    cut = np.uint64(int(fraction * 2.0**64))
    return mix64(np.asarray(global_rows, dtype=np.int64).astype(np.uint64), seed) < cut


# --------------------------------------------------------------------------- evaluation


def shard_split(split: SplitData, start: int, stop: int) -> SplitData:
    """A SplitData restricted to rows [start, stop): a torch Subset of its dataset and sliced arrays, with
    ``offset`` and ``total`` saying where those rows lie in the whole split."""
    import dataclasses

    from torch.utils.data import Dataset, Subset, TensorDataset

    dataset = split.dataset
    tensors = getattr(dataset, "tensors", None)
    part: Dataset
    if tensors is not None and len(tensors) == 2:  # keep the fast sliced path of iterate_batches
        part = TensorDataset(tensors[0][start:stop], tensors[1][start:stop])
    else:
        part = Subset(dataset, range(start, stop))
    return dataclasses.replace(
        split,
        dataset=part,
        labels=split.labels[start:stop],
        features=None if split.features is None else split.features[start:stop],
        source_rows=None if split.source_rows is None else split.source_rows[start:stop],
        attributes=None if split.attributes is None else split.attributes.iloc[start:stop],
        offset=split.offset + start,
        total=split.global_n,
    )


@dataclass(frozen=True)
class ShardEvaluation:
    """One split evaluated by one worker: its rows, their predictions, and (rank 0) the whole split's."""

    local_split: SplitData
    local_predictions: Predictions
    gathered: Predictions | None
    """Every worker's predictions in global row order, on rank 0; None on the other workers."""


def evaluate_sharded(
    split: SplitData,
    world: World,
    batch_size: int,
    evaluate_part: Callable[[SplitData, Callable[[int], None] | None], Predictions],
    on_batch: Callable[[int], None] | None = None,
) -> ShardEvaluation:
    """Evaluate this worker's shard with ``evaluate_part(shard, on_batch)`` and gather the Predictions to rank 0.

    ``split`` is the whole split (every worker then takes its shard, aligned to ``batch_size``) or
    already this worker's shard (``total`` set: ``data.load_data(shard=...)``, aligned to the same batch;
    it is evaluated as it is). Shards are aligned to
    ``batch_size`` so every batch is one the single-process run would form: per-sample outputs and
    per-batch losses are then identical and only the final sum of batch losses is added in a different
    order (relative difference ~1e-16). ``gathered`` holds the split's Predictions on rank 0 (rows in
    global order) and None on the other workers; a single process evaluates the whole split and its
    local predictions are the gathered ones. ``on_batch`` gets global progress (the shard's offset plus
    samples done).
    """
    if not world.distributed:
        whole = evaluate_part(split, on_batch)
        return ShardEvaluation(split, whole, whole)
    if split.total is not None:
        part_split = split
    else:
        start, stop = shard_bounds(split.n, world.rank, world.world_size, align=batch_size)
        part_split = shard_split(split, start, stop)
    start = part_split.offset
    progress = None if on_batch is None else (lambda done: on_batch(start + done))
    part = evaluate_part(part_split, progress) if part_split.n else None
    n_local = part_split.n
    loss_sums = all_gather_scalars([part.loss * n_local if part is not None else 0.0], world)[:, 0]
    y_true = gather_rows(part.y_true if part is not None else split.labels[:0], world)
    empty_pred = split.labels[:0].astype(np.float32 if split.labels.dtype == np.float32 else np.int64)
    y_pred = gather_rows(part.y_pred if part is not None else empty_pred, world)
    has_probs = all_gather_scalars([-1 if part is None or part.probs is None else part.probs.shape[1]], world, dtype=np.int64)[:, 0]
    width = int(has_probs.max())
    probs = None
    if width > 0:
        local_probs = part.probs if part is not None and part.probs is not None else np.zeros((0, width), np.float32)
        probs = gather_rows(local_probs, world)
    if part is None:
        part = Predictions(split=split.name, y_true=split.labels[:0], y_pred=empty_pred,
                           probs=None if width <= 0 else np.zeros((0, width), np.float32), loss=0.0)
    if not world.is_main:
        return ShardEvaluation(part_split, part, None)
    loss = float(sum(float(v) for v in loss_sums)) / max(split.global_n, 1)
    assert y_true is not None and y_pred is not None
    gathered = Predictions(split=split.name, y_true=y_true, y_pred=y_pred, probs=probs, loss=loss)
    return ShardEvaluation(part_split, part, gathered)
