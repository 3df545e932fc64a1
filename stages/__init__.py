"""DVC hops: one module per hop (fetch, clean, format, sample, tokenize)."""
