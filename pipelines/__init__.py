"""The training side: Prefect flows and PyTorch models over the tokenized corpora.

- ``pipelines.flows``: the DVC flows ``train``, ``evaluate``, ``report`` (a Prefect flow each);
- ``pipelines.ops``: operations (``serve``, ``repro``, ``retrain``, ``search``, ...);
- ``pipelines.cli``: user commands over trained models (``translate``, ``chat``, ``generate``);
- ``pipelines.tensor``, ``pipelines.text``: the two kinds of corpus, each its tasks and model
  families (registered by name in ``pipelines.tasks`` and ``pipelines.models``);
- ``pipelines.scoring``: predictions and headline metrics.

Nothing heavy is imported here: ``import pipelines`` costs nothing; each flow module imports
torch/Prefect itself.
"""
