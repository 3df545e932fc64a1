"""Great Expectations, imported once per process (about 2.5 s, so lazily) with the dependencies
rnnflow never uses deferred, its in-memory context, and its expectation classes by name."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

#: Modules Great Expectations imports at start-up but needs only for expectations and
#: renderers rnnflow never uses (KL divergence / KS tests, Altair charts, JSON-schema and
#: Markdown checks, local time zones in Data Docs): about 1 s of its
#: 2.5 s import. :func:`load_gx` leaves them unexecuted until something reads an attribute.
_DEFERRED_GX_DEPS = ("scipy.stats", "altair", "jsonschema", "mistune", "tzlocal")


class _DeferredModule(types.ModuleType):
    """A module registered in ``sys.modules`` whose code runs on first attribute access.

    Unlike :class:`importlib.util.LazyLoader` (which fires on ``__spec__``, read by every
    ``import`` of an already-imported module), only a *missing* attribute triggers the load:
    ``import altair`` and ``from scipy import stats`` bind the module without executing it;
    ``stats.entropy`` (or importing a submodule, which reads ``__path__``) executes it in
    place, so every holder of the module sees the real one.
    """

    _lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        with _DeferredModule._lock:
            if type(self) is _DeferredModule:
                spec = self.__spec__
                assert spec is not None and spec.loader is not None  # set by its importer
                self.__class__ = types.ModuleType  # type: ignore[assignment]
                if spec.submodule_search_locations is not None:
                    self.__path__ = spec.submodule_search_locations
                try:
                    spec.loader.exec_module(self)
                except BaseException:
                    sys.modules.pop(spec.name, None)
                    raise
        return object.__getattribute__(self, name)


def _defer(name: str) -> None:
    """Register ``name`` as a :class:`_DeferredModule` (no-op if imported or not installed)."""
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    try:
        parent_module = importlib.import_module(parent) if parent else None
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return
    module = importlib.util.module_from_spec(spec)
    if hasattr(module, "__path__"):
        del module.__path__  # a submodule import must load the package first
    module.__class__ = _DeferredModule
    sys.modules[name] = module
    if parent_module is not None:
        setattr(parent_module, child, module)


@functools.lru_cache(maxsize=1)
def load_gx() -> Any:
    """``great_expectations``, imported once per process with its unused deps deferred."""
    for name in _DEFERRED_GX_DEPS:
        _defer(name)
    import great_expectations as gx

    return gx


@functools.lru_cache(maxsize=1)
def gx_context() -> tuple[Any, Any]:
    """One ephemeral (in-memory) GX context per process: no files, no Data Docs."""
    gx = load_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        ctx.data_sources.add_pandas("rnnflow")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole")
    )
    return ctx, batch_def


def expectation_class(type_name: str) -> Any:
    """The GX expectation class of a snake-case type name
    (``expect_column_values_to_be_between`` → ``ExpectColumnValuesToBeBetween``)."""
    load_gx()
    import great_expectations.expectations as gxe

    camel = "".join(part.capitalize() for part in type_name.split("_"))
    try:
        return getattr(gxe, camel)
    except AttributeError as exc:
        raise ValueError(f"unknown Great Expectations expectation {type_name!r}") from exc
