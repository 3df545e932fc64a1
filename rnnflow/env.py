"""Process-wide defaults that keep every tool offline and quiet.

Imported first by every entry point, so nothing waits on the network for telemetry,
update checks or hub look-ups. Only *defaults* are set: a user's own environment wins.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # A cold temporary Prefect server can take longer than Prefect's 20 s default.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
# Turns an OpenMP thread (libgomp: torch's on Linux) spins at a barrier before it sleeps. The
# default (300,000) makes a 2-thread training step several times slower when another process
# is busy; sleeping at once (OMP_WAIT_POLICY=PASSIVE) makes it about a third slower when the
# cores are free. This keeps nearly all of the speed alone (benchmarks/omp_wait.py).
SPINCOUNT = "10000"


def apply_offline_defaults() -> None:
    """Set telemetry-off / offline environment defaults without overriding the user's."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "OMP_WAIT_POLICY" not in os.environ:  # a user's wait policy wins over our spin count
        os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)
    os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
    os.environ.setdefault("HF_HOME", str(PROJECT_ROOT / ".cache" / "huggingface"))


MIRROR_ENV = "RNNFLOW_MIRROR"


def mirror_dir() -> Path | None:
    """The local mirror directory named by ``$RNNFLOW_MIRROR``, if set."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None
