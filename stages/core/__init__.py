"""The hop framework the DVC hops and the corpus adapters share: the hop runner and its CLI
(:mod:`~stages.core.hop`), the config bases (:mod:`~stages.core.config`), ordered sources
(:mod:`~stages.core.sources`) and what a fetch carries (:mod:`~stages.core.context`), the
source catalogue and the trust-on-first-use lock (:mod:`~stages.core.catalogue`,
:mod:`~stages.core.lock`), Hugging Face datasets (:mod:`~stages.core.hfsource`,
:mod:`~stages.core.hfcolumns`), downloads (:mod:`~stages.core.download`), Great Expectations
validation (:mod:`~stages.core.validate`) and row hashing (:mod:`~stages.core.hashing`)."""
