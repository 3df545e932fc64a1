"""Where a hop's per-batch work runs: in the hop's own process, or on Dask workers
(``params.yaml`` ``data``: :class:`DataConfig`).

The heavy hops (clean, sample, tokenize) hand their per-batch function to :meth:`Engine.map`.
With ``dask`` each input batch is one Dask task; results come back **in input order** and
the hop writes them exactly as the local engine does: the same batches, the same row groups,
the same validation, so the output files are byte-identical and switching engines leaves
``dvc status`` clean. What is global stays in the hop's process (a tokenizer's fit, the
sample's choice of rows, de-duplication), and only a few batches are in flight at a time, so
memory stays flat however big the corpus.

``data`` is no stage's DVC param, on purpose: it changes where the work runs, never what it
writes. Workers of a remote cluster must run a checkout of the same commit (they import the
hop's code by name).
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

from pydantic import Field

from rnnflow.config import Config, parse

T = TypeVar("T")
R = TypeVar("R")


class DaskConfig(Config):
    """``data.dask``: which cluster."""

    address: str | None = None  # a running scheduler; None: a LocalCluster for this hop
    workers: int = Field(default=2, ge=1)  # LocalCluster worker processes (one thread each)


class DataConfig(Config):
    """``data``: how the heavy hops run (not what they write)."""

    engine: Literal["local", "dask"] = "local"  # local | dask
    dask: DaskConfig = DaskConfig()


class Engine:
    """An ordered, bounded ``map`` over a hop's batches; a Dask cluster started on first use."""

    def __init__(self, cfg: DataConfig | None = None) -> None:
        self.cfg = cfg or DataConfig()
        self._client: Any = None
        self._cluster: Any = None
        self.tasks = 0  # batches run as Dask tasks

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Engine:
        """The engine ``params["data"]`` names (local when there is no such section)."""
        return cls(parse(DataConfig, params, "data") if "data" in params else None)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn`` over ``items``, results in order (lazy: consume it to run the work)."""
        if self.cfg.engine == "local":
            return map(fn, items)
        return self._dask_map(fn, items)

    def _dask_map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        if self._client is None:  # a Dask cluster started on first use
            from dask.distributed import Client, LocalCluster

            dask = self.cfg.dask
            if dask.address:
                self._client = Client(dask.address)
            else:
                self._cluster = LocalCluster(
                    n_workers=dask.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.WARNING,
                )
                self._client = Client(self._cluster)
        client = self._client
        # Two tasks per worker keep every worker busy while the hop writes; more would only
        # hold more batches in memory.
        window = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
        pending: deque[Any] = deque()
        for item in items:
            pending.append(client.submit(fn, item, pure=False))
            self.tasks += 1
            if len(pending) >= window:
                yield self._result(pending.popleft(), fn)
        while pending:
            yield self._result(pending.popleft(), fn)

    def _result(self, future: Any, fn: Callable[..., Any]) -> Any:
        """A task's result; a task whose workers kept dying becomes the one-line error every
        hop reports (an exception ``fn`` raised itself comes back as it was)."""
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            where = self.cfg.dask.address or "the LocalCluster"
            name = getattr(fn, "func", fn).__name__  # a functools.partial: its function's
            raise RuntimeError(
                f"data.engine dask: the workers of {where} running {name} died "
                f"({exc}); a worker out of memory is the usual cause: fewer `data.dask.workers` "
                f"on this machine, or bigger ones"
            ) from None

    def close(self) -> None:
        """Say what ran where; stop the cluster this engine started (a remote one is only
        disconnected from)."""
        if self._client is not None:
            workers = len(self._client.scheduler_info().get("workers", {}))
            where = self.cfg.dask.address or "a LocalCluster"
            print(f"data.engine dask: {self.tasks} batches on {workers} Dask workers ({where})",
                  file=sys.stderr)  # fmt: skip
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None
