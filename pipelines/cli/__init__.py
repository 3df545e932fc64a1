"""User commands over trained models: ``translate``, ``chat``, ``generate``, and ``ddp_train``
(data-parallel training under ``torchrun``)."""
