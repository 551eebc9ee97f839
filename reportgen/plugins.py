"""Import user code named in the config: "file.py:name" (relative to the YAML) or "package.module:name"."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from reportgen.config import suggest
from reportgen.errors import ConfigError


def load_object(reference: str, resolve: Callable[[str], Path], key: str) -> Any:
    """Return the attribute a reference names; the YAML is trusted like a Makefile, so this runs user code."""
    module_part, sep, attribute = reference.rpartition(":")
    if not sep or not module_part or not attribute:
        raise ConfigError(f"{key} {reference!r} must look like 'file.py:name' or 'package.module:name'")
    if module_part.endswith(".py"):
        path = resolve(module_part)
        if not path.is_file():
            raise ConfigError(f"{key}: file not found: {path}")
        module_name = "reportgen_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            folder = str(path.parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception:
                del sys.modules[module_name]
                raise
    else:
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"{key}: cannot import module {module_part!r} ({exc})") from None
    if not hasattr(module, attribute):
        public = [name for name in dir(module) if not name.startswith("_")]
        raise ConfigError(f"{key}: {module_part} has no attribute {attribute!r}{suggest(attribute, public)}")
    return getattr(module, attribute)


def call_user_object(
    reference: str, kwargs: dict[str, Any], resolve: Callable[[str], Path], key: str, error: type[Exception]
) -> Any:
    """Load the callable a config key names and call it with that section's ``kwargs``."""
    target = load_object(reference, resolve, key)
    section = key.rpartition(".")[0]
    try:
        return target(**kwargs)
    except TypeError as exc:
        raise error(f"{key} {reference!r} could not be called with {section}.kwargs: {exc}") from None

