"""rnnflow: real corpora → validated Parquet (DVC) → trained sequence models (Prefect + PyTorch)."""

from rnnflow import env as _env

_env.apply_offline_defaults()

__version__ = "0.1.0"
