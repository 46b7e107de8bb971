"""Which code a graph file may name: the trust model.

A graph file is data. The code it can make run is:

- node types and backends of installed packages (found through entry points: installing a package is
  the consent to run it);
- a few pure standard-library modules (``SAFE_MODULES``: ``math:factorial``, ``operator:neg``);
- modules the user allows: ``--allow-module PKG`` on the command line, ``FLOWGRAPH_ALLOW_MODULES=a,b``
  in the environment, or ``flowgraph.allow_modules("pkg")`` in a program. Allowing a package allows
  its submodules.

Anything else named as ``module:attr`` (a node ``type``, a map's ``fn``, a source's ``iterable``) is
refused before it is imported, with the fix named, so ``validate`` and ``viz`` of a downloaded graph
import nothing of its choosing, and ``fn: "os:system"`` runs nothing. The decision is the process's,
not the file's: a graph cannot allow modules for itself.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .errors import RegistryError

__all__ = [
    "ENV_VAR",
    "SAFE_MODULES",
    "UntrustedCode",
    "allow_modules",
    "allowed_modules",
    "check_reference",
    "import_reference",
]

ENV_VAR = "FLOWGRAPH_ALLOW_MODULES"

SAFE_MODULES = frozenset({"math", "cmath", "operator", "statistics"})
"""Standard-library modules of pure functions: naming them runs nothing a graph could abuse."""

_allowed: set[str] = set()


class UntrustedCode(RegistryError):
    """A graph named code from a module this process has not allowed."""


def allow_modules(*packages: str) -> None:
    """Allow graphs to name code in these packages (and their submodules), for this process."""
    _allowed.update(p.strip() for p in packages if p.strip())


def allowed_modules() -> frozenset[str]:
    """What graphs may name now: the safe modules, the allowed packages and ``FLOWGRAPH_ALLOW_MODULES``."""
    from_env = {p.strip() for p in os.environ.get(ENV_VAR, "").split(",") if p.strip()}
    return frozenset(SAFE_MODULES | _allowed | from_env)


def _is_allowed(module: str) -> bool:
    allowed = allowed_modules()
    parts = module.split(".")
    return any(".".join(parts[:k]) in allowed for k in range(1, len(parts) + 1))


def check_reference(ref: str, what: str) -> tuple[str, str]:
    """(module, attribute path) of ``module:attr``, or ``UntrustedCode`` if the module is not allowed.
    Imports nothing: validation calls this."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"expected 'module:name', got {ref!r}")
    if not _is_allowed(module):
        top = module.split(".")[0]
        raise UntrustedCode(
            f"{what} {ref!r} is code from module {module!r}, which this run does not allow; if you trust "
            f"it, run with --allow-module {top} (or {ENV_VAR}={top}, or flowgraph.allow_modules({top!r}))"
        )
    return module, attr


def import_reference(ref: str, what: str) -> Any:
    """The object ``module:attr`` names, imported only if the module is allowed (``check_reference``)."""
    module_name, attr_path = check_reference(ref, what)
    try:
        target: Any = _import_allowed(module_name)
    except ImportError as exc:
        raise RegistryError(
            f"cannot import module {module_name!r} for {what} {ref!r}: {exc} (searched the installed "
            f"packages, then the current folder {os.getcwd()})"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise RegistryError(f"{module_name!r} has no attribute {attr_path!r} ({what} {ref!r})") from None
    return target


def _import_allowed(module_name: str) -> Any:
    """Import a module the run allows; one not installed is looked for in the current folder too.

    Why: ``flowgraph`` is a console script, so unlike ``python -m`` its import path lacks the folder
    it was started in, and a user's ``mynodes.py`` next to the graph would not import. The folder is
    searched last (installed packages win, nothing there shadows them) and only for modules the trust
    rule already let through: a graph cannot make the engine import an arbitrary file from it."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        here = os.getcwd()
        if exc.name != top or here in sys.path or "" in sys.path:
            raise
    sys.path.append(here)
    importlib.invalidate_caches()
    return importlib.import_module(module_name)
