"""The Jinja2 sandbox the report templates run in: bounded ``*`` and ``**``, templates confined to their folder.

Kept apart from ``render/html.py`` so that importing the renderers (json, junit and md runs do) does not
import Jinja2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reportgen.errors import InputError

MAX_TEMPLATE_SEQUENCE = 1_000_000
"""Longest string or list a template may build with ``*`` (characters or items)."""
MAX_TEMPLATE_EXPONENT = 1_000
"""Largest exponent a template may raise a number to with ``**``."""


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with ``*`` and ``**`` bounded: ``{{ "x" * 10**10 }}`` stops at once.

    The sandbox already limits ``range()``; repeating a string or list, or a huge power, would
    otherwise hold the render (and its memory) until the process is killed.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_TEMPLATE_EXPONENT:
            raise SecurityError(f"the exponent {right!r} is larger than {MAX_TEMPLATE_EXPONENT:,}")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and not isinstance(count, bool):
                    if len(sequence) * count > MAX_TEMPLATE_SEQUENCE:
                        raise SecurityError(f"repeating a {type(sequence).__name__} {count:,} times builds more than "
                                            f"{MAX_TEMPLATE_SEQUENCE:,} items")
        return super().call_binop(context, operator, left, right)


class ConfinedLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader whose templates must resolve inside the folder they were found in.

    A symlink (or a path through one) that leads outside its template folder is refused, so a
    template folder cannot pull other files of the machine into report.html.
    """

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = super().get_source(environment, template)
        if filename is not None:
            _require_inside(Path(filename), [Path(p) for p in self.searchpath])
        return source, filename, uptodate


def _require_inside(path: Path, roots: list[Path]) -> None:
    """Raise InputError unless ``path`` resolves inside the root it lies in."""
    for root in roots:
        if path.is_relative_to(root) or path.absolute().is_relative_to(root.absolute()):
            if not path.resolve().is_relative_to(root.resolve()):
                raise InputError(f"template {path}: resolves outside its template folder {root} (a symlink?); refused")
            return
