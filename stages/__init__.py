"""DVC hops: one module per hop (fetch, clean, format, sample, tokenize).

``python -m stages.<hop>`` imports this package first: when a hop server runs for the session
(``$RNNFLOW_HOP_SERVER``, see ``rnnflow.hopserver``), the hop is handed to it here, before
anything heavy is imported; otherwise, or if it refuses, the hop runs in this process.
"""

import sys as _sys

if _sys.argv[:1] == ["-m"]:
    from rnnflow.hopserver import delegate as _delegate

    _delegate()
