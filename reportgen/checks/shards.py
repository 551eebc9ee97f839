"""Checks over rows spread across workers: local phases, meetings by hash, and one row sample for every worker count.

On a run of several workers (``reportgen run --nproc-per-node N``, torchrun) each worker holds a contiguous
shard of every split, and rank 0, which runs the checks and writes the report, gets every worker's
predictions (labels, predicted classes, scores: a few bytes per row) but not their input rows. A check
that needs the inputs reads them in one of two ways, and its result must not depend on the number of workers:

1. **A local phase** (``Check.local``): every worker runs it on its own rows and returns a small,
   bounded state (counts, a histogram, a few examples); rank 0 receives the states of all workers in
   rank order (``CheckContext.local_results``), which is the order of the rows, and merges them in
   ``run``. A local phase may also hand over **keyed rows** (``KeyedRows``: a 64-bit hash per row and an
   int64 payload): rows with equal hashes are sent to the same worker (``distributed.exchange_by_hash``,
   hash modulo the world size), which calls ``Check.meet`` on what it received; the outcomes of ``meet``
   reach rank 0 the same way. That is how overlaps and conflicting labels are found across shards without
   sending every hash to every worker. ``meet`` may itself return a ``LocalPart`` with keyed rows: they
   meet again by their new hashes (at most ``MAX_MEETING_ROUNDS``), and rank 0 gets the last round's state
   (a check that needs an earlier round's keeps it in ``shard.cache`` on that worker and hands it on).
2. **The row sample** (``CheckContext.row_sample``): at most ``ROW_SAMPLE_MAX_ROWS`` rows of a split (fewer
   for wide inputs: ``ROW_SAMPLE_MAX_BYTES`` of inputs), chosen by a hash of the global row index and the
   run's seed (``distributed.sample_global_rows``), so the same rows are chosen whatever the number of
   workers; every row when the split is smaller. Their inputs, attributes, labels and predictions are
   gathered to rank 0 in the split's order.

A one-process run takes the same path (every collective is then a no-op), so the two agree by
construction. Local phases contain no collectives themselves: the framework runs them, then checks
that every worker succeeded before any exchange, so a check that fails on one worker becomes a result
with status ``error`` on rank 0 instead of a worker waiting forever. Every worker runs the same
enabled checks in the same order (they read the same config).
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, cast

import numpy as np

from reportgen.checks.read_only import freeze, freeze_inputs, freeze_sample, shared_tensor
from reportgen.types import DataBundle, Predictions, ReadsBundle, SplitData

if TYPE_CHECKING:  # torch (through reportgen.distributed) is imported when checks run, not when a report renders
    from reportgen.checks.base import Check, CheckSettings
    from reportgen.distributed import World

ROW_SAMPLE_MAX_ROWS = 200_000
"""Rows of each split in the row sample: enough for a two-sample KS test or a slice table to resolve
differences of about 0.5 percentage points, and bounded so rank 0's memory does not grow with the data."""
ROW_SAMPLE_MAX_BYTES = 256 * 2**20
"""Bound on the sampled inputs of one split (float32): wide inputs (images) get fewer rows."""
ROW_SAMPLE_SALT = 0x5EED_0F_5A_3B_1E
"""Mixed into the run's seed so the row sample is not the same set as other seeded choices."""
MAX_STATE_BYTES = 64 * 2**20
"""Largest pickled local state one worker may send to rank 0 for one check."""
MAX_MEETING_ROUNDS = 4
"""Meetings one check may chain (``Check.meet`` returning a LocalPart with keyed rows asks for another)."""


class RowsElsewhere:
    """Stands in, on rank 0 of a multi-worker run, for a split's rows: its dataset, and its features,
    attributes and source rows where the split has them (the rows live on the workers).

    ``len()`` gives the split's size; any other use (indexing, iterating, an attribute such as ``shape``
    or ``columns``, ``numpy.asarray``) raises LookupError with a message that says what to do instead,
    so a check that still reads ``ctx.data.splits[...]`` ends as a result with status ``error`` and that
    message, never with a silently partial answer (``is None`` tests still answer as on one process).
    """

    def __init__(self, split: str, n: int, what: str = "rows") -> None:
        self.split, self.n, self.what = split, n, what

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"RowsElsewhere({self.split!r}, {self.n}, {self.what!r})"

    def refuse(self, *_: Any, **__: Any) -> Any:
        raise LookupError(
            f"the {self.split} split's {self.what} are spread over the workers of this run, so rank 0 cannot read "
            "them from ctx.data: a check reads input rows through a local phase (Check.local) or the row sample "
            "(ctx.row_sample, with uses_row_sample = True on the check); see docs/plugins.md")

    __getitem__ = __iter__ = __array__ = refuse

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # numpy and copy probe dunders: answer as a plain object would
            raise AttributeError(name)
        return self.refuse()


@dataclass(frozen=True)
class KeyedRows:
    """Rows to be met by hash: ``hashes`` (n,) uint64 and ``payload`` (n, k) int64 (e.g. split, label, global row).

    Optionally, ``groups`` (n,) small non-negative ints and ``meets``, the pairs of groups whose rows are
    compared (a group paired with itself: rows of that group compared with each other). With ``meets``, a row
    travels only when its hash may occur in a group it meets, over all workers (``distributed.hash_presence``
    maps, all-gathered per group): a row that can meet no other row is left out of the meeting, which then
    finds the same matches with a fraction of the rows. ``meets`` must be the same on every worker.
    """

    hashes: np.ndarray
    payload: np.ndarray
    groups: np.ndarray | None = None
    meets: tuple[tuple[int, int], ...] = ()
    payload_of: Callable[[np.ndarray], np.ndarray] | None = None
    """Instead of ``payload`` (then ignored: an empty placeholder): a function that gives the payload of the rows at some positions
    (sorted (m,) int64 indices into ``hashes``) as an (m, k) array, so that only the rows that travel get one."""

    def __post_init__(self) -> None:
        from reportgen.distributed import as_columns

        hashes = np.asarray(self.hashes, dtype=np.uint64).reshape(-1)
        object.__setattr__(self, "hashes", hashes)
        if self.payload_of is None:
            object.__setattr__(self, "payload", as_columns(self.payload, hashes.size))
        if self.meets:
            groups = np.asarray(self.groups if self.groups is not None else np.zeros(hashes.size, np.int8)).reshape(-1)
            if groups.size != hashes.size or (groups.size and int(groups.min()) < 0):
                raise ValueError("KeyedRows.groups must hold one non-negative group per row")
            object.__setattr__(self, "groups", groups)
            object.__setattr__(self, "meets", tuple((int(a), int(b)) for a, b in self.meets))


def _rows_that_may_meet(keyed: KeyedRows, world: "World") -> KeyedRows:
    """``keyed`` without the rows whose hash occurs in no group they meet (``KeyedRows.meets``), on any worker.

    Collectives: one all_reduce of the group sizes, then the presence maps of each group met. Rows whose
    hash is in another row's group are all kept together, so every meeting finds what it would with every row.
    """
    from reportgen.distributed import all_reduce_sum, hash_presence, presence_bits

    assert keyed.groups is not None
    groups, hashes = keyed.groups, keyed.hashes
    involved = sorted({g for pair in keyed.meets for g in pair})
    sizes = all_reduce_sum(np.bincount(groups.astype(np.int64), minlength=involved[-1] + 1)[: involved[-1] + 1], world)
    maps: dict[int, Any] = {}
    keep = np.zeros(hashes.size, dtype=bool)
    for at, (a, b) in enumerate(keyed.meets):
        for g in (a, b):  # every worker builds the maps in the same order (each is one collective)
            if g not in maps:
                maps[g] = hash_presence(hashes[groups == g], presence_bits(int(sizes[g])), world, repeats=(g, g) in keyed.meets)
        for group, other in {(a, b), (b, a)}:
            rows = np.flatnonzero(groups == group)
            keep[rows] |= maps[other].contains(hashes[rows], "repeated" if group == other else "anywhere")
        later = {g for pair in keyed.meets[at + 1:] for g in pair}
        maps = {g: m for g, m in maps.items() if g in later}  # a map is dropped after the last pair that reads it
    return KeyedRows(hashes[keep], _payload_at(keyed, np.flatnonzero(keep)))


def _payload_at(keyed: KeyedRows, at: np.ndarray) -> np.ndarray:
    """The payload of the rows at positions ``at`` (sorted), built then when the check gave a function."""
    from reportgen.distributed import as_columns

    return as_columns(keyed.payload_of(at), at.size) if keyed.payload_of is not None else keyed.payload[at]


@dataclass(frozen=True)
class LocalPart:
    """What one worker's local phase returns: a small state for rank 0, and optionally rows to meet by hash."""

    state: Any = None
    keyed: KeyedRows | None = None


@dataclass(frozen=True)
class WorkerResult:
    """One worker's share of a check's local phase, as rank 0 receives it."""

    rank: int
    state: Any
    met: Any = None
    """What ``Check.meet`` returned on this worker for the keyed rows routed to it (None without keyed rows)."""


@dataclass(frozen=True)
class LocalFailure:
    """A local phase (or meeting) that raised on some worker: rank 0 reports it as the check's error."""

    message: str
    exception: str
    rank: int


@dataclass(frozen=True)
class ShardContext(ReadsBundle):
    """What a local phase sees on one worker: its own rows of every split and their predictions.

    ``data.splits[name]`` holds this worker's rows (``offset`` and ``global_n`` place them in the split);
    ``predictions[name]`` the same rows' predictions, aligned with them.
    """

    task: str
    data: DataBundle
    predictions: Mapping[str, Predictions]
    world: World
    batch_size: int = 512
    seed: int = 0
    model: Any = None
    device: Any = None
    output_kind: str | None = None
    threshold: float = 0.5
    cache: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class RowSample:
    """The sampled rows of one split on rank 0: inputs, attributes and labels (``split``), their predictions,
    and their indices in the whole split (``rows``, sorted)."""

    split: SplitData
    predictions: Predictions | None
    """The sampled rows' predictions; None only for a split without predictions (a context built by hand:
    every split of a pipeline run has them)."""
    rows: np.ndarray
    of_n: int
    """Rows of the whole split."""

    @property
    def is_whole(self) -> bool:
        """True when the sample is the whole split (every row, in order)."""
        return len(self.rows) == self.of_n

    def evidence(self) -> dict[str, Any]:
        """What a check's evidence says of the rows it read: ``{"sample": {"rows", "of", "rule"}}`` when
        this is a sample of a larger split, else ``{}`` (a whole split needs no note, and a split of up to
        ROW_SAMPLE_MAX_ROWS rows keeps the evidence it had before the row sample existed)."""
        if self.is_whole:
            return {}
        return {"sample": {"rows": int(len(self.rows)), "of": int(self.of_n),
                           "rule": "rows chosen by a hash of the row index and the run's seed, the same for any number of workers"}}


# --------------------------------------------------------------------------- collectives on Python objects


def _gather_objects(value: Any, world: World) -> list[Any] | None:
    """Every worker's ``value`` in rank order on rank 0 (None elsewhere); ``[value]`` on one process."""
    if not world.distributed:
        return [value]
    import torch.distributed as dist

    parts: list[Any] | None = [None] * world.world_size if world.is_main else None
    dist.gather_object(value, parts, dst=0)
    return parts


def _all_ok(ok: bool, world: World) -> np.ndarray:
    """(world_size,) flags: which workers succeeded (the same array on every worker)."""
    from reportgen.distributed import all_gather_scalars

    return all_gather_scalars([1 if ok else 0], world, dtype=np.int64)[:, 0].astype(bool)


def _failure(exc: BaseException, rank: int, world: World) -> LocalFailure:
    where = f" (worker {rank})" if world.distributed else ""
    return LocalFailure(f"{exc.__class__.__name__}: {exc}{where}", exc.__class__.__name__, rank)


def _checked_state(part: Any) -> Any:
    size = len(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    if size > MAX_STATE_BYTES:
        raise ValueError(f"the local state is {size:,} bytes, over the bound of {MAX_STATE_BYTES:,}")
    return part


# --------------------------------------------------------------------------- local phases


def has_local_phase(check: "Check") -> bool:
    """True when the check overrides ``Check.local``."""
    from reportgen.checks.base import Check

    return type(check).local is not Check.local


def run_local_phases(
    checks: Iterable[tuple["Check", "CheckSettings"]], shard: ShardContext
) -> dict[str, tuple[WorkerResult, ...] | LocalFailure] | None:
    """Run the local phase of every check given (those with one) on this worker; rank 0 gets them all.

    ``checks`` must be the same (check, settings) pairs, in the same order, on every worker. Returns, on
    rank 0, ``{check id: (WorkerResult per rank) or LocalFailure}``; None on the other workers.
    """
    from reportgen.distributed import all_gather_scalars, exchange_packed, pack_by_destination

    world = shard.world
    freeze_inputs(shard.data, shard.predictions)  # a local phase that writes into its inputs fails alike on any N
    collected: dict[str, tuple[WorkerResult, ...] | LocalFailure] = {}
    for check, settings in checks:
        if not has_local_phase(check):
            continue
        check_id = check.spec.id
        failure: LocalFailure | None = None
        state: Any = None
        keyed: KeyedRows | None = None
        try:
            returned = check.local(shard, settings)
            part = returned if isinstance(returned, LocalPart) else LocalPart(state=returned)
            state, keyed = _checked_state(part.state), part.keyed
            del returned, part  # the keyed rows are held by ``keyed`` alone, so they are freed once sent
        except Exception as exc:  # the check's error, reported on rank 0 like a crash in run()
            failure = _failure(exc, world.rank, world)
        ok = _all_ok(failure is None, world)
        met: Any = None
        for _round in range(MAX_MEETING_ROUNDS + 1):
            flags = all_gather_scalars([1 if failure is None and keyed is not None else 0,
                                        1 if failure is None and keyed is not None and keyed.meets else 0],
                                       world, dtype=np.int64)
            keyed_flags = flags[:, 0]
            if not ok.all() or not keyed_flags.any():
                break
            if not keyed_flags.all():
                failure = LocalFailure("the check handed over keyed rows on some workers only", "RuntimeError", world.rank)
            elif _round == MAX_MEETING_ROUNDS:
                failure = LocalFailure(f"the check asked for more than {MAX_MEETING_ROUNDS} meetings", "RuntimeError", world.rank)
            else:
                assert keyed is not None
                if world.distributed and flags[:, 1].all():
                    keyed = _rows_that_may_meet(keyed, world)
                elif keyed.payload_of is not None:
                    keyed = KeyedRows(keyed.hashes, _payload_at(keyed, np.arange(keyed.hashes.size)))
                outbox = pack_by_destination(keyed.hashes, keyed.payload, world)
                keyed = None  # only the packed copy is left while the rows travel
                hashes, payload = exchange_packed(outbox, world)
                assert payload is not None
                try:
                    met = check.meet(KeyedRows(hashes, payload), shard, settings)
                    if isinstance(met, LocalPart):  # another meeting: its rows travel, its state is this round's
                        met, keyed = met.state, met.keyed
                    met = _checked_state(met)
                except Exception as exc:
                    failure = _failure(exc, world.rank, world)
            ok = _all_ok(failure is None, world)
        sent = failure if failure is not None else WorkerResult(world.rank, state, met)
        gathered = _gather_objects(sent, world)
        if gathered is None:
            continue
        failures = [g for g in gathered if isinstance(g, LocalFailure)]
        if failures or not ok.all():
            collected[check_id] = failures[0] if failures else LocalFailure(
                "a worker's local phase failed", "RuntimeError", int(np.flatnonzero(~ok)[0]))
        else:
            collected[check_id] = tuple(gathered)
    return collected if world.is_main else None


# --------------------------------------------------------------------------- the row sample


def row_sample_size(split: SplitData, max_rows: int = ROW_SAMPLE_MAX_ROWS) -> int:
    """How many rows of ``split`` the row sample holds: every row up to ``max_rows`` (ROW_SAMPLE_MAX_ROWS),
    fewer for wide inputs."""
    shape = split.features.shape[1:] if split.features is not None else _input_shape(split)
    width = max(1, int(np.prod(shape, dtype=np.int64)))
    return int(min(split.global_n, max_rows, max(1, ROW_SAMPLE_MAX_BYTES // (4 * width))))


def _input_shape(split: SplitData) -> tuple[int, ...]:
    tensors = getattr(split.dataset, "tensors", None)
    if tensors is not None:
        return tuple(tensors[0].shape[1:])
    if split.n:
        import torch

        return tuple(torch.as_tensor(split.dataset[0][0]).shape)
    return ()


def _local_inputs(split: SplitData, local: np.ndarray) -> np.ndarray:
    """Inputs of this worker's rows ``local`` (positions in its shard): float32, or the inputs' own integer
    or boolean dtype (token ids, category codes), which a model may need as they are."""
    if split.features is not None:
        return _as_sampled(np.asarray(split.features[local]))
    import torch

    tensors = getattr(split.dataset, "tensors", None)
    if tensors is not None:
        return _as_sampled(tensors[0][torch.from_numpy(local)])
    if not len(local):  # the dtype of a row, when this worker has one (the sample's dtype is agreed on later)
        first = _as_sampled(torch.as_tensor(split.dataset[0][0])[None]) if split.n else np.zeros((0,), np.float32)
        return np.zeros((0, *_input_shape(split)), dtype=first.dtype)
    return _as_sampled(torch.stack([torch.as_tensor(split.dataset[int(i)][0]) for i in local]))


SAMPLED_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8), np.dtype(np.int64), np.dtype(np.float32))
"""The dtypes sampled inputs travel in, narrowest first: every worker casts to the widest any of them holds."""


def _as_sampled(inputs: Any) -> np.ndarray:
    """A contiguous numpy copy in one of SAMPLED_DTYPES: floating point as float32, booleans and bytes as
    they are, other integers as int64."""
    if hasattr(inputs, "is_floating_point"):  # a torch tensor
        inputs = (inputs.float() if inputs.is_floating_point() else inputs).numpy()
    dtype = np.dtype(inputs.dtype)
    if dtype not in SAMPLED_DTYPES:
        dtype = np.dtype(np.int64) if np.issubdtype(dtype, np.integer) else np.dtype(np.float32)
    return np.ascontiguousarray(inputs, dtype=dtype)


def gather_row_samples(shard: ShardContext, names: Iterable[str] | None = None,
                       max_rows: int = ROW_SAMPLE_MAX_ROWS) -> dict[str, RowSample] | None:
    """The row sample of each split (``names``: default every split), gathered to rank 0 in split order.

    ``max_rows`` bounds the rows per split (a smaller bound lets a test sample a small split).

    Every worker must call this alike. The rows are ``sample_global_rows(global_n, ..., row_sample_size,
    seed)``: a function of the split's size and the seed only. Memory on rank 0: the sampled inputs (at
    most ROW_SAMPLE_MAX_BYTES per split), their attribute rows, labels and predictions. Returns None on
    the other workers.
    """
    import torch
    from torch.utils.data import TensorDataset

    from reportgen.distributed import all_gather_scalars, gather_rows, sample_global_rows

    world = shard.world
    out: dict[str, RowSample] = {}
    for name in names or [n for n in ("train", "val", "test") if n in shard.data.splits]:
        split, pred = shard.data.splits[name], shard.predictions.get(name)  # the same splits on every worker
        total = split.global_n
        sizes = all_gather_scalars([row_sample_size(split, max_rows)], world, dtype=np.int64)[:, 0]
        size = int(sizes.min())  # the same on every worker (each computes it from the same global facts)
        seed = (int(shard.seed) ^ ROW_SAMPLE_SALT) % 2**63
        if size >= total:
            chosen = np.arange(total, dtype=np.int64)
        else:
            chosen = sample_global_rows(total, split.offset, split.offset + split.n, size, seed, world)
        if not world.distributed and split.features is not None and split.offset == 0 and split.total is None:
            # one process holds the whole split: every row stored as sampled is the split's own arrays; otherwise
            # the rows are copied out while read
            whole = size >= total and _stored_as_sampled(split)
            out[name] = freeze_sample(_whole_split(split, pred, chosen) if whole else _sampled_in_place(split, pred, chosen))
            continue
        mine = chosen[(chosen >= split.offset) & (chosen < split.offset + split.n)]
        local = mine - split.offset
        local_x = _local_inputs(split, local)
        known = SAMPLED_DTYPES.index(local_x.dtype)
        agreed = SAMPLED_DTYPES[int(all_gather_scalars([known if split.n else 0], world, dtype=np.int64)[:, 0].max())]
        x = gather_rows(local_x.astype(agreed, copy=False), world)
        labels = gather_rows(np.asarray(split.labels)[local], world)
        y_pred = gather_rows(np.asarray(pred.y_pred)[local], world) if pred is not None else None
        width = all_gather_scalars([-1 if pred is None or pred.probs is None else pred.probs.shape[1]], world,
                                   dtype=np.int64)[:, 0]
        probs = None
        if pred is not None and int(width.max()) > 0:
            local_probs = pred.probs[local] if pred.probs is not None else np.zeros((0, int(width.max())), np.float32)
            probs = gather_rows(local_probs, world)
        has_rows = split.source_rows is not None
        source_rows = gather_rows(np.asarray(split.source_rows)[local] if has_rows else np.zeros(0, np.int64), world)
        frames = _gather_objects(None if split.attributes is None else split.attributes.iloc[local], world)
        if not world.is_main:
            continue
        assert x is not None and labels is not None and frames is not None
        attributes = None
        if all(f is not None for f in frames):
            import pandas as pd

            # the frames are this function's own copies (iloc with rows, or unpickled): renumbered in place
            attributes = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            attributes.index = pd.RangeIndex(len(attributes))
        target = torch.from_numpy(labels)
        sampled = SplitData(
            name=name, dataset=TensorDataset(torch.from_numpy(x), target), labels=labels,
            features=x if split.features is not None else None,
            source_rows=source_rows if has_rows else None, source=split.source, attributes=attributes,
        )
        predictions = (Predictions(split=name, y_true=labels, y_pred=y_pred, probs=probs, loss=pred.loss)
                       if pred is not None and y_pred is not None else None)
        out[name] = freeze_sample(RowSample(sampled, predictions, chosen, total))  # after the tensors: no warning
    return out if world.is_main else None


def _stored_as_sampled(split: SplitData) -> bool:
    """True when the split's features are what the row sample would hold: a contiguous numpy array in one of
    SAMPLED_DTYPES (tabular data), so a sample of every row of a whole split can share them instead of copying
    (read-only: reportgen/checks/read_only.py)."""
    features = split.features
    return isinstance(features, np.ndarray) and features.dtype in SAMPLED_DTYPES and features.flags.c_contiguous


def _whole_split(split: SplitData, pred: Predictions | None, rows: np.ndarray) -> RowSample:
    """The row sample of a whole split held by one process: the split's own arrays (its features, labels,
    attributes and source rows, its predictions' classes and scores), the same values ``gather_row_samples``
    would copy out, without the copies."""
    import pandas as pd
    from torch.utils.data import TensorDataset

    assert split.features is not None
    labels = np.asarray(split.labels)
    attributes = split.attributes
    if attributes is not None and not (isinstance(attributes.index, pd.RangeIndex)
                                       and attributes.index.equals(pd.RangeIndex(len(attributes)))):
        attributes = attributes.reset_index(drop=True)  # numbered 0..n-1 like a gathered sample
    sampled = dataclasses.replace(
        split, dataset=TensorDataset(shared_tensor(split.features), shared_tensor(labels)), labels=labels,
        source_rows=None if split.source_rows is None else np.asarray(split.source_rows), attributes=attributes,
        offset=0, total=None,
    )
    predictions = (Predictions(split=split.name, y_true=labels, y_pred=np.asarray(pred.y_pred), probs=pred.probs,
                               loss=pred.loss) if pred is not None else None)
    return RowSample(sampled, predictions, rows, split.n)


class _SampledSplit(SplitData):
    """The sampled rows of a whole split held by one process, as a SplitData whose ``features``, ``dataset`` and
    ``attributes`` are copied out of the split when read (the same values ``gather_row_samples`` copies out on
    several workers) and kept only while a reader holds them (weak references): a row sample cached for the
    whole run then costs its labels, predictions and row indices, not a second copy of every sampled input.
    """

    _whole: SplitData
    _local: np.ndarray
    _held: dict[str, Any]

    def __init__(self, whole: SplitData, local: np.ndarray) -> None:  # noqa: D107 (SplitData's fields, below)
        for name, value in (("name", whole.name), ("labels", np.asarray(whole.labels)[local]),
                            ("source_rows", None if whole.source_rows is None else np.asarray(whole.source_rows)[local]),
                            ("source", whole.source), ("offset", 0), ("total", None),
                            ("_whole", whole), ("_local", local), ("_held", {})):
            object.__setattr__(self, name, value)

    def _read(self, field: str, make: Callable[[], Any]) -> Any:
        import weakref

        held = self._held.get(field)
        value = held() if held is not None else None
        if value is None:
            value = make()
            self._held[field] = weakref.ref(value)
        return value

    @property  # type: ignore[override]
    def features(self) -> np.ndarray:
        return self._read("features", lambda: freeze(_as_sampled(np.asarray(self._whole.features[self._local]))))

    @property  # type: ignore[override]
    def dataset(self) -> Any:
        from torch.utils.data import TensorDataset

        return self._read("dataset", lambda: TensorDataset(shared_tensor(self.features), shared_tensor(self.labels)))

    @property  # type: ignore[override]
    def attributes(self) -> Any:
        import pandas as pd

        if self._whole.attributes is None:
            return None

        def copy_out() -> Any:
            frame = self._whole.attributes.iloc[self._local]
            frame.index = pd.RangeIndex(len(frame))
            return frame

        return self._read("attributes", copy_out)


def _sampled_in_place(split: SplitData, pred: Predictions | None, rows: np.ndarray) -> RowSample:
    """The row sample ``rows`` (sorted) of a whole split held by one process (``_SampledSplit``)."""
    sampled = _SampledSplit(split, rows)
    predictions = None
    if pred is not None:
        probs = None if pred.probs is None else pred.probs[rows]
        predictions = Predictions(split=split.name, y_true=sampled.labels, y_pred=np.asarray(pred.y_pred)[rows],
                                  probs=probs, loss=pred.loss)
    return RowSample(sampled, predictions, rows, split.n)


def labels_only(data: DataBundle, predictions: Mapping[str, Predictions]) -> DataBundle:
    """Rank 0's view of a multi-worker run's data: every split's labels (from the gathered predictions) and
    sizes, but no rows: ``RowsElsewhere`` stands in for the dataset, and for the features, attributes and
    source rows of a split that has them (those a split lacks stay None, as on one process)."""
    splits = {}
    for name, split in data.splits.items():
        labels = predictions[name].y_true
        n = len(labels)

        def elsewhere(present: Any, what: str, name: str = name, n: int = n) -> Any:
            return None if present is None else RowsElsewhere(name, n, what)

        splits[name] = dataclasses.replace(
            split, dataset=cast(Any, RowsElsewhere(name, n)), labels=labels,
            features=elsewhere(split.features, "input features"), source_rows=elsewhere(split.source_rows, "source rows"),
            attributes=elsewhere(split.attributes, "attributes"), offset=0, total=None,
        )
    return dataclasses.replace(data, splits=splits)
