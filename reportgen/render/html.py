"""report.html: one self-contained page (inline CSS and SVG, no JavaScript, nothing fetched)."""

from __future__ import annotations

import importlib.resources
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

import reportgen
from reportgen.errors import InputError, RunError
from reportgen.render.base import Renderer, RenderOptions

if TYPE_CHECKING:
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


def environment(template_dir: Path | None = None) -> jinja2.Environment:
    """A Jinja environment with autoescape on; ``template_dir`` overrides built-in templates by name."""
    search: list[Path] = []
    if template_dir is not None:
        template_dir = Path(template_dir)
        if not template_dir.is_dir():
            raise InputError(f"template_dir {template_dir} is not a folder")
        search.append(template_dir)
    search.append(default_template_dir())
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env


def check_templates(template_dir: Path | None) -> None:
    """Compile the report template and every user template up front (before any training).

    Raises InputError for a missing folder or a template with a syntax error, naming file and line.
    """
    env = environment(template_dir)
    names = [TEMPLATE]
    if template_dir is not None:
        names += sorted(p.name for p in Path(template_dir).iterdir() if p.suffix == ".j2" and p.name != TEMPLATE)
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None


def render_html(report: "Report", options: RenderOptions) -> bytes:
    """Return the HTML report; the same report and options always give the same bytes."""
    key = (id(report), options)
    cached = _cache.get(key)
    if cached is not None and cached[0] is report:
        return cached[1]
    from reportgen.render import view  # imported here: it loads matplotlib, which json, junit and md never need

    env = environment(options.template_dir)
    try:
        template = env.get_template(TEMPLATE)  # template errors surface before any chart is drawn
        text = template.render(r=view.build(report))
    except jinja2.TemplateSyntaxError as exc:
        raise RunError(f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise RunError(f"template {TEMPLATE}: {exc.__class__.__name__}: {' '.join(str(exc).split())}") from exc
    html = text.encode("utf-8")
    _cache[key] = (report, html)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return html


RENDERER = Renderer(format="html", filename="report.html", render=render_html)
