"""The DVC flows ``train``, ``evaluate`` and ``report``: one Prefect flow each, run by DVC."""
