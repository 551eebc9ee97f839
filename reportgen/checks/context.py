"""What a check can see: the data, the predictions, the metrics and the training record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from reportgen.types import DataBundle, Predictions, TrainingResult


@dataclass(frozen=True)
class CheckContext:
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

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in index order."""
        return self.data.classes

    @property
    def positive_index(self) -> int | None:
        """Index of the positive class (binary tasks)."""
        return self.data.positive_index

    def evaluation_split(self) -> str:
        """The split checks judge the model on: test."""
        return "test"

    def holdout_split(self) -> str:
        """The split compared with train for overfitting: val when present, else test."""
        return "val" if "val" in self.predictions else "test"
