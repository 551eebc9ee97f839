"""Checks of the training family."""

from __future__ import annotations
