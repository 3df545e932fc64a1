"""The training side: Prefect flows and PyTorch models over the tokenized corpora.

- ``pipelines.flows``: the DVC flows ``train``, ``evaluate``, ``report`` (a Prefect flow each);
- ``pipelines.ops``: operations (``serve``, ``repro``, ``retrain``, ``compare``, ``search``, ...);
- ``pipelines.cli``: user commands over trained models (``translate``, ``chat``, ``generate``);
- ``pipelines.metrics``: scoring, text scorers and n-gram baselines;
- ``pipelines.models``: model families, registered by name.

Nothing heavy is imported here: ``import pipelines`` costs nothing; each flow module imports
torch/Prefect itself.
"""
