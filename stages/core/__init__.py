"""The hop framework the DVC hops and the corpus adapters share: the hop runner and its CLI,
config bases, sources, downloads, validation and row hashing, one module each."""
