"""The one place where time, versions and seeds enter a run, so reports are reproducible."""

from __future__ import annotations

import datetime as _dt
import platform
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from reportgen import __version__


@dataclass(frozen=True)
class RunInfo:
    """Everything about a run that is not derived from config and data."""

    reportgen_version: str
    torch_version: str
    python: str
    created_at: str
    seed: int
    device: str
    world_size: int = 1
    """Number of worker processes the run was spread over (reportgen/distributed.py)."""


def utc_now() -> _dt.datetime:
    """Return the current UTC time, truncated to seconds."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def collect_run_info(
    seed: int, device: str, clock: Callable[[], _dt.datetime] = utc_now, world_size: int = 1
) -> RunInfo:
    """Read versions and the clock once, for one run."""
    return RunInfo(
        reportgen_version=__version__,
        torch_version=torch.__version__,
        python=platform.python_version(),
        created_at=clock().isoformat().replace("+00:00", "Z"),
        seed=seed,
        device=device,
        world_size=world_size,
    )


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch generator derived from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
