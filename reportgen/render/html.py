"""report.html: one self-contained page (inline CSS and SVG, no JavaScript, nothing fetched)."""

from __future__ import annotations

import importlib.resources
import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import reportgen
from reportgen.errors import InputError, RunError
from reportgen.render.base import Renderer, RenderOptions

if TYPE_CHECKING:
    from reportgen.render.sandbox import BoundedSandbox

    from reportgen.report import Report

TEMPLATE = "report.html.j2"

_CACHE_SIZE = 4
_cache: "OrderedDict[tuple[int, RenderOptions], tuple[Any, bytes]]" = OrderedDict()
"""Recent (report, html) by report identity: the PDF renderer reuses the HTML of the same report.
The report itself is kept in the entry, so its id cannot be reused while cached."""


def default_template_dir() -> Path:
    """The built-in templates: ``reportgen/templates`` in a wheel, else the repo's ``templates/``."""
    try:
        packaged = importlib.resources.files("reportgen") / "templates"
        if isinstance(packaged, Path) and packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - exotic loaders
        pass
    return Path(reportgen.__file__).resolve().parent.parent / "templates"


_BIDI_AND_SURROGATES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""Control characters (an ESC from a class name must not reach a terminal that cats the page),
bidirectional controls (they could reorder the text around a name, e.g. show FAIL as LIAF or
move a verdict) and lone surrogates (not encodable): replaced by U+FFFD anywhere in the page, chart
labels included. Names are further isolated by <bdi> and ``unicode-bidi: isolate`` in the templates."""


def environment(template_dir: Path | None = None) -> "BoundedSandbox":
    """A sandboxed Jinja environment with autoescape on; ``template_dir`` overrides built-in templates by name.

    Jinja's ImmutableSandboxedEnvironment: templates read the report and format it, but cannot
    reach Python internals (``__globals__``, ``__subclasses__``, ...) or modify data; such an
    attempt is an InputError naming the template. Templates resolve only inside their folder. Custom
    templates render within ``sandbox.TEMPLATE_TIME_BUDGET_S`` seconds (render/sandbox.py bounds sizes too).
    """
    import jinja2

    from reportgen.render import sandbox
    from reportgen.render.sandbox import BoundedSandbox, ConfinedLoader

    search: list[Path] = []
    if template_dir is not None:
        template_dir = Path(template_dir)
        if not template_dir.is_dir():
            raise InputError(f"template_dir {template_dir} is not a folder")
        search.append(template_dir)
    search.append(default_template_dir())
    env = BoundedSandbox(
        loader=ConfinedLoader([str(p) for p in search]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        time_budget_s=sandbox.TEMPLATE_TIME_BUDGET_S if template_dir is not None else None,
    )
    return env


def _failing_template(exc: BaseException) -> str:
    """The template file (name) whose code raised ``exc``: the innermost .j2 frame of its traceback."""
    tb = exc.__traceback__
    name = TEMPLATE
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".css")):
            name = Path(filename).name
        tb = tb.tb_next
    return name


def _user_template(exc: BaseException, template_dir: Path | None) -> str | None:
    """The name of the innermost template from ``template_dir`` whose code ``exc`` passed through; None when
    there is no custom folder or only built-in templates were involved (their errors are bugs: exit 3)."""
    if template_dir is None:
        return None
    root = Path(template_dir).resolve()
    tb, name = exc.__traceback__, None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".css")) and Path(filename).resolve().is_relative_to(root):
            name = Path(filename).name
        tb = tb.tb_next
    return name


def check_templates(template_dir: Path | None) -> None:
    """Compile the report template and every user template up front (before any training).

    Raises InputError for a missing folder or a template with a syntax error, naming file and line.
    """
    import jinja2

    from reportgen.render.sandbox import _require_inside

    env = environment(template_dir)
    names = [TEMPLATE]
    if template_dir is not None:
        folder = Path(template_dir)
        for path in sorted(folder.rglob("*")):
            _require_inside(path, [folder])
            if path.suffix in (".j2", ".css") and not path.is_file():
                raise InputError(f"template {path}: not a regular file (a folder, a FIFO or a device); refused")
        names += sorted(p.name for p in folder.iterdir() if p.suffix == ".j2" and p.name != TEMPLATE)
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None
        except UnicodeDecodeError:
            raise InputError(f"template {name} in {template_dir}: not UTF-8 text") from None


def render_html(report: "Report", options: RenderOptions) -> bytes:
    """Return the HTML report; the same report and options always give the same bytes."""
    key = (id(report), options)
    cached = _cache.get(key)
    if cached is not None and cached[0] is report:
        return cached[1]
    # imported here: they load Jinja2 and matplotlib, which json, junit and md never need
    import jinja2
    from jinja2.exceptions import SecurityError

    from reportgen.render import chart_batch, view
    from reportgen.render.pdf_engine import active_worker
    from reportgen.render.sandbox import TemplateTimeExceeded

    env = environment(options.template_dir)
    try:
        template = env.get_template(TEMPLATE)  # template errors surface before any chart is drawn
        with chart_batch.collecting(active_worker()) as charts:  # a PDF worker, when running, draws part
            built = view.build(report)
        resolved = charts.resolve(built)
        try:
            text = env.render(template, r=resolved)
        except (jinja2.TemplateError, SecurityError):
            raise
        except Exception as exc:
            # whatever a custom template's own code raises (1/0, "x" * 1.5, ...) is bad input (exit 2)
            user_template = _user_template(exc, options.template_dir)
            if user_template is None:
                raise
            raise InputError(f"template {user_template}: {exc.__class__.__name__}: "
                             f"{' '.join(str(exc).split())[:300]}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RunError(f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}") from exc
    except TemplateTimeExceeded as exc:
        raise InputError(f"template {_failing_template(exc)}: {exc}; a template must not loop or compute "
                         "without bound") from exc
    except SecurityError as exc:
        raise InputError(f"template {_failing_template(exc)}: refused by the template sandbox: "
                         f"{' '.join(str(exc).split())}") from exc
    except (jinja2.TemplateError, UnicodeDecodeError, RecursionError, OverflowError, MemoryError) as exc:
        # a custom template's mistake is bad input (exit 2); one in the built-in templates is a bug (exit 3)
        error = InputError if options.template_dir is not None else RunError
        raise error(f"template {TEMPLATE}: {exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}") from exc
    html = _BIDI_AND_SURROGATES.sub("\ufffd", text).encode("utf-8")
    _cache[key] = (report, html)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return html


RENDERER = Renderer(format="html", filename="report.html", render=render_html)
