"""The hop framework the DVC hops and the corpus adapters share: the hop runner and its CLI
(:mod:`~stages.core.hop`), the config bases (:mod:`~stages.core.config`), ordered sources and
the trust-on-first-use lock (:mod:`~stages.core.sources`), downloads
(:mod:`~stages.core.download`), Great Expectations validation (:mod:`~stages.core.validate`)
and row hashing (:mod:`~stages.core.hashing`)."""
