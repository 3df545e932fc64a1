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
    # OpenMP threads that sleep instead of spinning at barriers. On this shared 2-core
    # machine, with other processes busy, spinning made a 2-thread LSTM training step 25x
    # slower (16 s vs 0.55 s for the chatbot's step); passive waiting costs nothing idle.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def apply_offline_defaults() -> None:
    """Set telemetry-off / offline environment defaults without overriding the user's."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
    os.environ.setdefault("HF_HOME", str(PROJECT_ROOT / ".cache" / "huggingface"))


MIRROR_ENV = "RNNFLOW_MIRROR"


def mirror_dir() -> Path | None:
    """The local mirror directory named by ``$RNNFLOW_MIRROR``, if set."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None
