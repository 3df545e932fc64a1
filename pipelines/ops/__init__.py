"""Operations around the DAG: Prefect deployments (``serve``), ``repro`` from the UI, scheduled
``retrain`` with the GTO champion ``registry``, hyperparameter ``search``, the git/DVC
``workspace`` they share, and one Prefect server per run (``prefect_session``)."""
