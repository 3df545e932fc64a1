"""Measures of quality: headline metrics per task (``scoring``), text scorers (BLEU/chrF,
distinct-n, perplexity; ``scorers``) and the n-gram baselines they are compared with (``ngram``)."""
