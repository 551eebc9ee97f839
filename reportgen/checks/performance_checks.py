"""Checks of the performance family."""

from __future__ import annotations
