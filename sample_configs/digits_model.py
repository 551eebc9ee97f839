"""The model of the digits sample (referenced from digits_cnn.yaml as "digits_model.py:DigitsCNN").

reportgen builds it as ``DigitsCNN(**model.kwargs)``; it maps a batch of (N, 1, 8, 8) images
to (N, num_classes) logits.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 grey-scale digits: two 3x3 convolutions, one pooling, two linear layers."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),   # (N, 16, 8, 8)
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),  # (N, 32, 8, 8)
            nn.ReLU(),
            nn.MaxPool2d(2),                              # (N, 32, 4, 4)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
