"""What the text corpora share: their configs (:mod:`~stages.corpora.text.config`), reading
their files (:mod:`~stages.corpora.text.formats`; books: :mod:`~stages.corpora.text.gutenberg`)
and the adapter base with its cleaning
(:mod:`~stages.corpora.text.corpus`).

Reading (fetch). A text source names its files (with checksums) and a ``format``:

- ``moses``: line-aligned parallel files, one per language (``files: {es: …, en: …}``), or
  one zip holding them (the OPUS download; members found by their ``.<lang>`` suffix).
- ``tsv``: tab-separated fields named by ``columns`` (Tatoeba: ``[en, es]``, or
  ``[en, es, attribution]`` for the newer manythings files); every line must have exactly
  that many fields (a sentence holding a tab is an error naming the line, not a silently
  truncated row). Declared columns an adapter does not use are read and ignored.
- ``alternating``: one utterance a line, tweet then reply (``twitter_en.txt.gz``).
- ``gutenberg``: a plain-text book, one row per paragraph; the Project Gutenberg header
  and licence footer are stripped here, at fetch, because the markers are line-level
  state (``gutenberg_header: false`` for texts without them, e.g. tiny-shakespeare).
- ``hf``: a Hugging Face dataset (``dataset``, ``config``, ``split``, ``revision``,
  ``data_files``; see :class:`stages.core.config.DatasetSourceConfig`) read through
  ``datasets``, with ``columns`` mapping the corpus's raw columns onto dataset columns
  (dotted paths reach into structs: ``{src: translation.es, tgt: translation.en}``). Each
  adapter says which names it takes
  (:meth:`~stages.corpora.text.corpus.TextCorpus.read_hf`). Rows stream in batches of
  ``chunk_lines``; the lock records a digest of the mapped values
  (:class:`stages.core.context.ContentDigest`).

A file ending in ``.gz`` is read through gzip; a ``.zip`` through its ``member``. Files are
read in chunks of ``chunk_lines`` lines, each chunk one Arrow table, so memory stays flat
however big the file.

Tokenizing goes through :mod:`stages.corpora.texttok` (one vocabulary over a corpus's text
columns, fitted on train); each adapter adds its task to ``spec.json``.
"""
