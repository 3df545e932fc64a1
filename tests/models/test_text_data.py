"""The text models' data helpers: ragged rows, padding, the LM stream and length buckets, the
model's own vocabulary, detokenizing and truecasing."""

from __future__ import annotations

import numpy as np
import torch

from pipelines import data as D
from pipelines import text
from pipelines.models import BOS, EOS, PAD, UNK
from pipelines.text import data as T


def test_ragged_padding_stream_and_buckets():
    r = T.Ragged.from_lists([[5, 6, 7], [8], [9, 10]])
    assert r.take(np.array([2, 0])).values.tolist() == [9, 10, 5, 6, 7]
    x, n = T.padded(r, np.array([0, 1]), bos=True, eos=True)
    assert x.tolist() == [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, PAD, PAD]] and n.tolist() == [5, 3]
    assert T.lm_stream(r).tolist() == [EOS, 5, 6, 7, EOS, 8, EOS, 9, 10, EOS]
    xb, yb, tx, ty = T.batchify(T.lm_stream(r), 2)
    assert torch.equal(torch.cat([xb.flatten(), tx.flatten()]), torch.tensor(T.lm_stream(r)[:-1]))
    assert torch.equal(torch.cat([yb.flatten(), ty.flatten()]), torch.tensor(T.lm_stream(r)[1:]))

    lengths = np.random.default_rng(0).integers(1, 50, 1000)
    batches = T.bucket_batches(lengths, 32, D.epoch_generator(0, 1), chunk_batches=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.5 * np.mean(
        [np.ptp(lengths[np.arange(i, i + 32) % 1000]) for i in range(0, 1000, 32)]
    )
    again = T.bucket_batches(lengths, 32, D.epoch_generator(0, 1), chunk_batches=8)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_model_vocabulary_maps_rare_tokens_to_unk():
    values = np.array([4, 4, 4, 5, 5, 6, 9, 9, 9, 9])
    keep = T.keep_ids(values, 12, min_freq=2)
    assert keep.tolist() == [0, 1, 2, 3, 9, 4, 5]  # specials, then by frequency
    lut = T.lookup(keep, 12)
    assert lut[[9, 4, 6, 11, PAD, EOS]].tolist() == [4, 5, UNK, UNK, PAD, EOS]
    assert T.keep_ids(values, 12, max_vocab=5).tolist() == [0, 1, 2, 3, 9]
    assert T.keep_ids(values, 12) is None


def test_detokenize_and_truecase():
    import pyarrow as pa

    tc = T.fit_truecaser(
        pa.array(["Tom is here.", "I saw Tom and Mary.", "Where is Mary?", "So I left.", "the end"])
    )
    assert tc["tom"] == "Tom" and tc["mary"] == "Mary" and tc["i"] == "I"
    assert "the" not in tc and "is" not in tc
    toks = ["i", "don", "'", "t", "know", ",", "tom", ".", "it", "costs", "$", "3", ".", "5", "?"]
    assert text.detokenize(toks, tc) == "I don't know, Tom. It costs $3.5?"
    assert text.detokenize(["¿", "dónde", "está", "?"]) == "¿Dónde está?"
    assert text.detokenize(["he", "said", '"', "hi", '"', "."]) == 'He said "hi".'
