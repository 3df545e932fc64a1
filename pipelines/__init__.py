"""Prefect flows and PyTorch models: ``train``, ``evaluate``, ``report`` — one flow per DVC stage.

Nothing heavy is imported here: ``import pipelines`` costs nothing; each flow module imports
torch/Prefect itself.
"""
