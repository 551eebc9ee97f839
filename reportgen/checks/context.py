"""What a check can see: the data, the predictions, the metrics and the training record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from reportgen.types import DataBundle, Predictions, ReadsBundle, TrainingResult

if TYPE_CHECKING:
    from reportgen.checks.base import Check, CheckSettings
    from reportgen.checks.shards import LocalFailure, RowSample, ShardContext, WorkerResult


@dataclass(frozen=True)
class CheckContext(ReadsBundle):
    """Read-only inputs shared by every check of one run."""

    task: str
    data: DataBundle
    predictions: Mapping[str, Predictions]
    metrics: Mapping[str, Mapping[str, Any]]
    training: TrainingResult | None
    threshold: float = 0.5
    batch_size: int = 512
    previous: Mapping[str, Any] | None = None
    """The results.json of the run to compare with (e.g. the last release), when given."""
    previous_source: str | None = None
    """Where ``previous`` was read from when compare_to names a folder: the chosen results.json's path
    relative to that folder (POSIX separators); None when compare_to names the file itself."""
    model: Any = None
    """The evaluated ``torch.nn.Module`` (eval mode), for checks that run extra forward passes."""
    device: Any = None
    """The ``torch.device`` the model lives on."""
    output_kind: str | None = None
    """What the model's raw output means (see reportgen.outputs)."""
    reference_attributes: Any = None
    """The ``data.reference`` table (a pandas DataFrame, target dropped) that feature_drift compares test with."""
    seed: int = 0
    """The run's seed: checks that sample or shuffle derive their generators from it."""
    cache: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Scratch space for results several checks share (e.g. sample fingerprints)."""
    local_states: Mapping[str, "tuple[WorkerResult, ...] | LocalFailure"] | None = None
    """Every worker's result of each check's local phase (reportgen/checks/shards.py), by check id, when the
    pipeline ran them on the workers; None when the whole data is here (they are then run on first use)."""
    samples: Mapping[str, "RowSample"] | None = None
    """The row sample of each split gathered from the workers; None when the whole data is here (it is then
    drawn from ``data`` on first use, with the same rule)."""

    def evaluation_split(self) -> str:
        """The split checks judge the model on: test."""
        return "test"

    def holdout_split(self) -> str:
        """The split compared with train for overfitting: val when present, else test."""
        return "val" if "val" in self.predictions else "test"

    def as_shard(self) -> "ShardContext":
        """This context as the only worker's shard: for local phases run in-process on the whole data."""
        from reportgen.checks.shards import ShardContext
        from reportgen.distributed import World

        return ShardContext(task=self.task, data=self.data, predictions=self.predictions, world=World.single(),
                            batch_size=self.batch_size, seed=self.seed, model=self.model, device=self.device,
                            output_kind=self.output_kind, threshold=self.threshold, cache=self.cache)

    def ensure_local_results(self, check: "Check", settings: "CheckSettings") -> "tuple[WorkerResult, ...] | LocalFailure":
        """The check's local-phase results: the workers' when the pipeline gathered them, else run here once."""
        check_id = check.spec.id
        if self.local_states is not None and check_id in self.local_states:
            return self.local_states[check_id]
        key = f"local_phase:{check_id}"
        if key not in self.cache:
            from reportgen.checks.shards import run_local_phases

            ran = run_local_phases([(check, settings)], self.as_shard())
            assert ran is not None
            self.cache[key] = ran[check_id]
        return self.cache[key]

    def local_results(self, check_id: str) -> "tuple[WorkerResult, ...]":
        """Every worker's local-phase result of ``check_id``, in rank order (the order of the rows).

        Raises LookupError when the phase did not run or failed (``run_check`` reports a failure before ``run``)."""
        from reportgen.checks.shards import LocalFailure

        found = self.local_states.get(check_id) if self.local_states is not None else None
        found = found if found is not None else self.cache.get(f"local_phase:{check_id}")
        if found is None or isinstance(found, LocalFailure):
            raise LookupError(f"no local-phase results for {check_id!r}")
        return found

    def row_sample(self, split: str) -> "RowSample":
        """The row sample of ``split`` (reportgen/checks/shards.py): every row up to ROW_SAMPLE_MAX_ROWS,
        else rows chosen by a hash of their index and the seed, the same for any number of workers."""
        if self.samples is not None and split in self.samples:
            return self.samples[split]
        key = f"row_sample:{split}"
        if key not in self.cache:
            from reportgen.checks.shards import gather_row_samples

            drawn = gather_row_samples(self.as_shard(), [split])
            assert drawn is not None
            self.cache[key] = drawn[split]
        return self.cache[key]
