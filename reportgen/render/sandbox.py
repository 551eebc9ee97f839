"""The Jinja2 sandbox the report templates run in: a time budget, bounded sizes, templates confined to their folder.

Kept apart from ``render/html.py`` so that importing the renderers (json, junit and md runs do) does not
import Jinja2.
"""

from __future__ import annotations

import itertools
import math
import re
import signal
import string
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, cast

import jinja2
import jinja2.nodes
import jinja2.runtime
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reportgen.errors import InputError

MAX_TEMPLATE_SEQUENCE = 1_000_000
"""Longest string or list a template operation may build (characters or items): ``*``, ``+``, ``%``,
padding and repeating str methods and filters (center, ljust, format, replace, join, indent, ...)."""
MAX_TEMPLATE_EXPONENT = 1_000
"""Largest exponent a template may raise a number to with ``**``."""
MAX_TEMPLATE_INT_BITS = 4_096
"""Largest integer (in bits, about 1,200 decimal digits) a template's ``**`` or ``*`` may produce."""
MAX_TEMPLATE_OUTPUT = 64 * 1024 * 1024
"""Most characters one rendered template may produce (64 Mi; a report.html is a few MB)."""
TEMPLATE_TIME_BUDGET_S = 60.0
"""Wall-clock seconds a custom template may take to render; the built-in ones take well under a second
per report, so only a runaway template (nested loops, a huge computation) reaches it."""
_LIPSUM_WORDS = 10_000
"""Most words a template's ``lipsum()`` may produce."""
_PARTS_PER_BLOCK = 4096
"""Streamed output parts joined into one block at a time (bounds the per-part overhead of a render)."""

_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d*|\*)(?:\.(\d*|\*))?")
_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset)


class TemplateTimeExceeded(SecurityError):
    """A template ran past its wall-clock budget."""


class TemplateTooLarge(SecurityError):
    """A template operation would build a string, list or number over the sandbox's bounds."""


def _require_length(length: int, what: str) -> None:
    if length > MAX_TEMPLATE_SEQUENCE:
        raise TemplateTooLarge(f"{what} builds {length:,} characters or items, more than {MAX_TEMPLATE_SEQUENCE:,}")


def _size(value: Any) -> int:
    """Characters, bytes or items of a string, bytes or container; 0 for anything else."""
    return len(value) if isinstance(value, _SIZED) else 0


def _require_result(value: Any, what: str) -> Any:
    """Return ``value`` unless it is a string, bytes or container longer than MAX_TEMPLATE_SEQUENCE.

    The after-the-fact net under every call and filter: what the pre-checks could not foresee (a
    ``upper`` that grows ``ß`` to ``SS``, an encoding, a method nobody listed) is still refused.
    """
    _require_length(_size(value), what)
    return value


def _bounded_items(items: Any, what: str) -> Any:
    """``items`` as a list when it is a lazy iterable (a generator, a map), refused past MAX_TEMPLATE_SEQUENCE items;
    strings, bytes, containers and non-iterables are returned as they are."""
    if isinstance(items, _SIZED) or not hasattr(items, "__iter__"):
        return items
    listed = list(itertools.islice(items, MAX_TEMPLATE_SEQUENCE + 1))
    _require_length(len(listed), what)
    return listed


def _require_printf_widths(text: str, arguments: Iterable[Any] = ()) -> None:
    """Refuse ``%2000000000s``-style widths and precisions over MAX_TEMPLATE_SEQUENCE; a ``*`` width or
    precision takes its value from ``arguments``, so any integer argument over the bound is refused then."""
    starred = False
    for match in _PRINTF_FIELD.finditer(text):
        for digits in match.groups():
            if digits == "*":
                starred = True
            elif digits and int(digits) > MAX_TEMPLATE_SEQUENCE:
                _require_length(int(digits), "a %-format width")
    if starred:
        for value in arguments:
            if isinstance(value, int) and not isinstance(value, bool):
                _require_length(abs(value), "a %-format * width")


def _require_format_widths(text: str) -> None:
    """Refuse ``{:>2000000000}``-style widths and precisions in a str.format string (nested specs too)."""
    pending = [text]
    while pending:
        for _, _, spec, _ in string.Formatter().parse(pending.pop()):
            if spec:
                for digits in re.findall(r"\d+", spec):
                    _require_length(int(digits) if len(digits) < 12 else MAX_TEMPLATE_SEQUENCE + 1, "a format width")
                pending.append(spec)


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``a ~ b`` (Concat) compiled to ``environment.bounded_concat(context, (a, b))``.

    Jinja joins ``~`` with ``str_join``/``markup_join`` directly, past the sandbox's operator hooks, so
    ``{% set ns.s = ns.s ~ ns.s %}`` in a loop doubled a string until the time budget ran out (gigabytes
    later). Constant folding of ``~`` is given up with it (templates are small; it saves nothing).
    """

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat(context, (")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


_SANDBOX_FRAME_MODULES = ("jinja2", __name__)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, bounded in time and size, so that a template cannot hold a render (and its
    memory) until the process is killed.

    - Time: ``render`` arms a wall-clock deadline of ``time_budget_s`` (None: no deadline). In the main
      thread a repeating SIGALRM timer interrupts any Python-level loop of the template (it raises only in
      the template's own code or Jinja's, never inside a garbage-collector callback, a ``__del__`` or
      other code that happens to run, where Python could only report the error as "unraisable"; it
      fires again 50 ms later); every call, attribute lookup, operator, ``~`` and ``range``/``lipsum``
      item also checks the deadline, so the budget holds in other threads too. Exceeding it raises
      TemplateTimeExceeded.
    - Size: ``*``, ``**``, ``+``, ``~`` and ``%``, the str methods and filters that pad or repeat, ``join``,
      ``replace`` and ``lipsum`` are checked before they run (TemplateTooLarge), and the rendered text
      is capped at MAX_TEMPLATE_OUTPUT characters.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, *args: Any, time_budget_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.time_budget_s = time_budget_s
        self._deadline: float | None = None
        safe_range = cast(Callable[..., Iterable[Any]], self.globals["range"])
        self.globals["range"] = lambda *a: self._ticking(safe_range(*a))
        self.globals["lipsum"] = self._bounded_lipsum(cast(Callable[..., Any], self.globals["lipsum"]))
        for name in list(self.filters):  # every filter: pre-checks where known, the result's size always
            self.filters[name] = self._bounded_filter(name, self.filters[name])

    # -- time -------------------------------------------------------------------------------------
    def check_deadline(self) -> None:
        """Raise TemplateTimeExceeded when the armed deadline has passed."""
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise TemplateTimeExceeded(f"exceeded its time budget of {self.time_budget_s:g} s")

    def _in_template(self, frame: Any) -> bool:
        """True when ``frame`` runs this environment's template code, Jinja's runtime or this module's hooks."""
        if frame is None:
            return False
        namespace = frame.f_globals
        return namespace.get("environment") is self or str(namespace.get("__name__", "")).startswith(_SANDBOX_FRAME_MODULES)

    def _ticking(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.check_deadline()
            yield item

    @contextmanager
    def _budget(self) -> Iterator[None]:
        budget = self.time_budget_s
        if budget is None:
            yield
            return
        self._deadline = time.monotonic() + budget
        use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
        previous: Any = None
        if use_alarm:
            def alarm(signum: int, frame: Any) -> None:
                if self._deadline is not None and self._in_template(frame):  # not once the render has ended
                    raise TemplateTimeExceeded(f"exceeded its time budget of {budget:g} s")

            previous = signal.signal(signal.SIGALRM, alarm)
            # repeating: when the first alarm lands outside the template's code, the next one 50 ms later may not
            signal.setitimer(signal.ITIMER_REAL, budget, 0.05)
        try:
            yield
        finally:
            self._deadline = None
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    def render(self, template: jinja2.Template, **context: Any) -> str:
        """Render ``template`` within the time budget and MAX_TEMPLATE_OUTPUT; raises a SecurityError subclass."""
        with self._budget():
            # Memory follows the characters, not the number of parts: a template that emits millions of
            # one-character parts would hold ~50 bytes of object per character if they were kept one by one,
            # so they are joined into blocks of _PARTS_PER_BLOCK as they stream.
            blocks: list[str] = []
            parts: list[str] = []
            total = 0
            for part in template.generate(**context):
                total += len(part)
                if total > MAX_TEMPLATE_OUTPUT:
                    raise TemplateTooLarge(f"its output is longer than {MAX_TEMPLATE_OUTPUT:,} characters")
                parts.append(part)
                if len(parts) >= _PARTS_PER_BLOCK:
                    blocks.append("".join(parts))
                    parts.clear()
            blocks.append("".join(parts))
            return "".join(blocks)

    # -- size -------------------------------------------------------------------------------------
    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.check_deadline()
        if operator == "**" and isinstance(right, (int, float)) and not isinstance(right, bool):
            if abs(right) > MAX_TEMPLATE_EXPONENT:
                raise TemplateTooLarge(f"the exponent {right!r} is larger than {MAX_TEMPLATE_EXPONENT:,}")
            if right > 0 and _int_bits(left) * right > MAX_TEMPLATE_INT_BITS:
                raise TemplateTooLarge(f"the power would have about {int(_int_bits(left) * right * math.log10(2)):,} "
                                       f"digits, more than the {int(MAX_TEMPLATE_INT_BITS * math.log10(2)):,} a template may compute")
        if operator == "*":
            if _int_bits(left) + _int_bits(right) > MAX_TEMPLATE_INT_BITS:
                raise TemplateTooLarge(f"the product would have more than the {MAX_TEMPLATE_INT_BITS:,} bits a template may compute")
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, bytes, bytearray, list, tuple)) and isinstance(count, int) and not isinstance(count, bool):
                    _require_length(len(sequence) * count, f"repeating a {type(sequence).__name__} {count:,} times")
        if operator == "+":
            _require_length(_size(left) + _size(right), "joining with +")
        if operator == "%" and isinstance(left, str):
            _require_printf_widths(left, right if isinstance(right, tuple) else (right,))
            _require_length(len(left) + sum(_size(v) for v in (right if isinstance(right, tuple) else (right,))),
                            "a %-format")
        return _require_result(super().call_binop(context, operator, left, right), f"the {operator} operator")

    def bounded_concat(self, context: Any, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ ...``: every part as text, joined (escaped as Jinja would under autoescape); bounded in size."""
        self.check_deadline()
        _require_length(sum(len(part) for part in parts if isinstance(part, str)), "joining with ~")
        joined: str = (jinja2.runtime.markup_join if context.eval_ctx.autoescape else jinja2.runtime.str_join)(parts)
        _require_length(len(joined), "joining with ~")  # parts that only became long as text
        return joined

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.check_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.check_deadline()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        formatter = super().wrap_str_format(value)
        if formatter is None or not isinstance(owner, str):
            return formatter
        _require_format_widths(owner)

        def bounded(*args: Any, **kwargs: Any) -> str:
            arguments = [*args, *kwargs.values(), *(v for a in args if isinstance(a, dict) for v in a.values())]
            for argument in arguments:  # a width given as an argument: "{:>{w}}".format(x, w=...)
                if isinstance(argument, int) and not isinstance(argument, bool) and abs(argument) > MAX_TEMPLATE_SEQUENCE:
                    if "{" in "".join(spec or "" for _, _, spec, _ in string.Formatter().parse(owner)):
                        _require_length(abs(argument), "a format width")
            _require_length(len(owner) + sum(_size(a) for a in arguments), "str.format")
            return formatter(*args, **kwargs)

        return bounded

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        __self.check_deadline()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "a call")
        if isinstance(owner, (str, bytes)) and name == "join" and args:
            args = (_bounded_items(args[0], f"{type(owner).__name__}.join"), *args[1:])
        if isinstance(owner, str):
            _check_str_method(owner, name, args, kwargs)
        return _require_result(super().call(__context, __obj, *args, **kwargs), str(name))

    def _bounded_lipsum(self, lipsum: Callable[..., Any]) -> Callable[..., Any]:
        def bounded(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # noqa: A002 - Jinja's names
            if not all(isinstance(v, int) for v in (n, min, max)) or n * max > _LIPSUM_WORDS:
                raise TemplateTooLarge(f"lipsum(n={n!r}, max={max!r}) asks for more than {_LIPSUM_WORDS:,} words")
            return lipsum(n=n, html=html, min=min, max=max)

        return bounded

    def _bounded_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.check_deadline()
            passed = sum(isinstance(a, (jinja2.runtime.Context, jinja2.nodes.EvalContext, jinja2.Environment)) for a in args[:1])
            if name in ("join", "sum") and len(args) > passed:  # a generator's size is known only once listed
                args = (*args[:passed], _bounded_items(args[passed], f"the {name} filter"), *args[passed + 1:])
            values = list(args[passed:])
            _check_filter(name, values, kwargs)
            if name == "sum":
                linear = _linear_sum(values, kwargs)
                if linear is not None:
                    return linear
            return _require_result(function(*args, **kwargs), f"the {name} filter")

        for attribute in ("jinja_pass_arg",):  # keep Jinja's pass_context / pass_eval_context / pass_environment
            if hasattr(function, attribute):
                setattr(bounded, attribute, getattr(function, attribute))
        return bounded


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a str method call whose result would be over MAX_TEMPLATE_SEQUENCE, before it runs."""
    if name in _PADDING_METHODS:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool):
                width = value * (len(text) if name == "expandtabs" else 1)
                _require_length(max(width, len(text)), f"str.{name}")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _require_length(_replaced_length(text, args[0], args[1]), "str.replace")
    elif name == "join" and args:
        _require_join(text, args[0])


def _replaced_length(text: str, old: str, new: str) -> int:
    occurrences = len(text) + 1 if old == "" else text.count(old)
    return len(text) + occurrences * (len(new) - len(old))


def _require_join(separator: str, items: Any) -> None:
    if isinstance(items, (list, tuple, str)):
        _require_length(len(items) * (len(separator) + 1), "join")
        _require_length(sum(_size(item) if isinstance(item, str) else 1 for item in items)
                        + len(separator) * max(len(items) - 1, 0), "join")


def _check_filter(name: str, values: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse a filter call whose result would be over MAX_TEMPLATE_SEQUENCE, before it runs."""
    subject = values[0] if values else None
    text_length = len(str(subject)) if isinstance(subject, (str, int, float)) else _size(subject)
    if name == "wordwrap":
        _require_wordwrap(str(subject), values[1:], kwargs)
    if name == "batch":
        linecount = values[1] if len(values) > 1 else kwargs.get("linecount")
        if isinstance(linecount, int) and not isinstance(linecount, bool):
            _require_length(linecount, "the batch filter")
    elif name == "tojson":
        indent = values[1] if len(values) > 1 else kwargs.get("indent")
        if isinstance(indent, int) and not isinstance(indent, bool):
            _require_length(indent, "the tojson indent")
        elif isinstance(indent, str):
            _require_length(len(indent), "the tojson indent")
    elif name == "sum":
        start = values[2] if len(values) > 2 else kwargs.get("start", 0)
        if isinstance(subject, (list, tuple)) and (values[1] if len(values) > 1 else kwargs.get("attribute")) is None:
            _require_length(_size(start) + sum(_size(item) for item in subject), "the sum filter")
    elif name in ("center", "indent", "wordwrap", "truncate"):
        for value in (*values[1:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool):
                lines = str(subject).count("\n") + 1 if name == "indent" and subject is not None else 1
                _require_length(max(value, 0) * lines + text_length, f"the {name} filter")
            if isinstance(value, str) and name == "indent":
                _require_length(len(value) * (str(subject).count("\n") + 1) + text_length, "the indent filter")
    elif name == "replace" and len(values) >= 3:
        _require_length(_replaced_length(str(subject), str(values[1]), str(values[2])), "the replace filter")
    elif name == "join":
        separator = values[1] if len(values) > 1 else kwargs.get("d", "")
        if isinstance(subject, (list, tuple)):
            _require_join(str(separator), subject)
    elif name == "format" and isinstance(subject, str):
        _require_printf_widths(subject, (*values[1:], *kwargs.values()))
        _require_length(len(subject) + sum(_size(v) for v in (*values[1:], *kwargs.values())), "the format filter")


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


def _require_wordwrap(text: str, arguments: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse a wordwrap whose ``wrapstring`` would be inserted so often that the result is over the bound.

    Lines end at whitespace or, when a word is longer than ``width``, every ``width`` characters, so
    there are at most (whitespace characters + len(text) // width + 1) of them.
    """
    names = ("width", "break_long_words", "wrapstring")
    given = {**dict(zip(names, arguments)), **kwargs}
    width, wrapstring = given.get("width", 79), given.get("wrapstring")
    if not isinstance(wrapstring, str) or not isinstance(width, int) or isinstance(width, bool):
        return
    breaks = sum(c.isspace() for c in text) + len(text) // max(width, 1) + 1
    _require_length(len(text) + breaks * len(wrapstring), "the wordwrap filter")


def _linear_sum(values: list[Any], kwargs: dict[str, Any]) -> list[Any] | tuple[Any, ...] | None:
    """``items|sum(start=[])`` of lists (or of tuples) in linear time; None for any other sum.

    Python's ``sum`` copies the running list at every step (quadratic, in C, where the time budget
    cannot interrupt it); chaining gives the same list.
    """
    items = values[0] if values else None
    attribute = values[1] if len(values) > 1 else kwargs.get("attribute")
    start = values[2] if len(values) > 2 else kwargs.get("start", 0)
    if attribute is not None or not isinstance(items, list):
        return None
    for kind in (list, tuple):
        if type(start) is kind and all(type(item) is kind for item in items):
            return kind(itertools.chain(start, *items))
    return None
