"""Text tokenisation: train-only vocabulary, fixed specials, word and BPE, validation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rnnflow import codec
from stages.core.hop import data_dir
from stages.core.validate import Suite, validate
from stages.corpora import texttok
from stages.corpora.base import Corpus
from stages.corpora.texttok import SPECIALS, UNK, TextTokenizeConfig
from tests.conftest import run_hop, write_params

COLS = ("src", "tgt")

TRAIN = [
    ("The cat sat.", "El gato se sentó."),
    ("The dog sat!", "El perro se sentó!"),
    ("A cat, a dog.", "Un gato, un perro."),
    ("The cat ran.", "El gato corrió."),
]


def table(pairs, start: int = 1) -> pa.Table:
    return pa.table(
        {
            "row_id": pa.array(range(start, start + len(pairs)), pa.uint64()),
            "src": [p[0] for p in pairs],
            "tgt": [p[1] for p in pairs],
        }
    )


def fit(pairs, **cfg) -> dict:
    return texttok.fit(table(pairs).to_batches(max_chunksize=2), COLS, TextTokenizeConfig(**cfg))


def test_pretokenize_lowercases_and_splits_punctuation() -> None:
    got = codec.pretokenize(pa.array(["¿Cómo  estás?", "  Don't stop_me 3.5 ", "", "   "]))
    assert got.to_pylist() == [
        ["¿", "cómo", "estás", "?"],
        ["don", "'", "t", "stop", "_", "me", "3", ".", "5"],
        [],
        [],
    ]
    kept = codec.pretokenize(pa.array(["Hola Mundo"]), lowercase=False)
    assert kept.to_pylist() == [["Hola", "Mundo"]]


def test_specials_have_fixed_ids_and_stay_special() -> None:
    # "<unk>" in the text is punctuation + word + punctuation, never the special token.
    art = fit(TRAIN + [("<unk> <pad>", "<eos> <bos>")] * 3, min_freq=1)
    vocab = art["vocab.json"]
    assert vocab[:4] == list(SPECIALS) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocab.count("<unk>") == 1 and "unk" in vocab
    assert art["spec.json"]["specials"] == {"pad": 0, "bos": 1, "eos": 2, "unk": 3}
    assert art["spec.json"]["vocab_size"] == len(vocab)


def test_vocab_respects_min_freq_and_max_vocab_and_is_deterministic() -> None:
    # Counts over src+tgt: "." 6, "the" 3, "cat" 3, "el" 3, "gato" 3, "sat" 2, "se" 2,
    # "sentó" 2, "dog" 2, "perro" 2, "a" 2, "un" 2, "," 2, "!" 2; the rest once.
    art = fit(TRAIN, min_freq=2)
    words = art["vocab.json"][4:]
    assert words[0] == "."
    assert words[1:5] == ["cat", "el", "gato", "the"]  # count 3, alphabetical
    assert set(words[5:]) == {"sat", "se", "sentó", "dog", "perro", "a", "un", ",", "!"}
    assert words[5:] == sorted(words[5:])  # all count 2: alphabetical
    assert "ran" not in words and "corrió" not in words  # seen once < min_freq
    capped = fit(TRAIN, min_freq=1, max_vocab=7)
    assert capped["vocab.json"] == list(SPECIALS) + [".", "cat", "el"]
    assert capped["spec.json"]["vocab_size"] == 7
    # Same data in another order and other batch sizes: the same vocabulary.
    shuffled = TRAIN[:]
    random.Random(1).shuffle(shuffled)
    again = texttok.fit(
        table(shuffled).to_batches(max_chunksize=1), COLS, TextTokenizeConfig(min_freq=2)
    )
    assert again["vocab.json"] == art["vocab.json"]


def test_streaming_counts_equal_whole_table_counts() -> None:
    big = table(TRAIN * 50)
    whole, rows, n = texttok.count_tokens([big], COLS)
    parts, rows2, n2 = texttok.count_tokens(big.to_batches(max_chunksize=7), COLS)
    assert (rows, n) == (rows2, n2) == (200, n)
    assert whole.sort_by("token").equals(parts.sort_by("token"))
    assert dict(zip(whole["token"].to_pylist(), whole["count"].to_pylist()))["."] == 300


def test_encode_round_trips_types_and_unknowns() -> None:
    art = fit(TRAIN, min_freq=1)
    val = table([("The cat sat on the zebra.", "El gato se sentó.")], start=100)
    out = texttok.encode(val, COLS, art, None)
    assert out.column_names == ["row_id", "src", "tgt", "src_ids", "tgt_ids"]
    assert out.schema.field("src_ids").type == pa.list_(pa.int32())
    assert out["src"].equals(val["src"]) and out["row_id"].equals(val["row_id"])
    ids = out["src_ids"][0].as_py()
    tokens = codec.pretokenize(val["src"])[0].as_py()
    assert codec.decode(ids, art) == [t if t in art["vocab.json"] else "<unk>" for t in tokens]
    assert ids[tokens.index("on")] == UNK and ids[tokens.index("zebra")] == UNK
    assert codec.decode(out["tgt_ids"][0].as_py(), art) == ["el", "gato", "se", "sentó", "."]
    assert 1 not in ids and 2 not in ids  # no <bos>/<eos> added


def test_encode_handles_sliced_batches() -> None:
    art = fit(TRAIN, min_freq=1)
    whole = texttok.encode(table(TRAIN), COLS, art)
    part = texttok.encode(table(TRAIN).slice(2, 2), COLS, art)
    assert part["src_ids"].to_pylist() == whole["src_ids"].to_pylist()[2:]


def test_word_only_in_validation_is_unknown_after_fit_on_train() -> None:
    art = fit(TRAIN, min_freq=1)
    assert "zebra" not in art["vocab.json"]
    val = texttok.encode(table([("zebra", "cebra")]), COLS, art)
    assert val["src_ids"].to_pylist() == [[UNK]] and val["tgt_ids"].to_pylist() == [[UNK]]


def test_unk_rate_on_a_hand_made_example() -> None:
    art = fit(TRAIN, min_freq=1)
    # src: the(✓) zebra(✗) sat(✓) .(✓) → 1/4; tgt: el(✓) cebra(✗) corrió(✓) → 1/3
    t = table([("The zebra sat.", "El cebra corrió")])
    assert texttok.unk_rate(t, COLS, art) == pytest.approx({"src": 0.25, "tgt": 1 / 3})
    encoded = texttok.encode(t, COLS, art)
    assert texttok.unk_rate(encoded, COLS, art) == pytest.approx({"src": 0.25, "tgt": 1 / 3})
    stats = texttok.token_stats(encoded, COLS, art)
    assert stats["rows"] == 1
    assert stats["columns"]["src"] == {
        "tokens": 4,
        "unk_rate": 0.25,
        "mean_length": 4.0,
        "max_length": 4,
    }


def test_bpe_trains_and_encodes_without_unknowns_for_seen_characters() -> None:
    art = fit(TRAIN * 5, kind="bpe", vocab_size=60, min_freq=1)
    spec = art["spec.json"]
    assert spec["kind"] == "bpe" and "tokenizer.json" in art and "vocab.json" not in art
    assert 4 < spec["vocab_size"] <= 60
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(art["tokenizer.json"])
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3]
    # Unseen words made of seen characters: split into pieces, never <unk>.
    out = texttok.encode(table([("The tac dogs sat.", "Los gatos")]), COLS, art)
    assert out.schema.field("src_ids").type == pa.list_(pa.int32())
    ids = out["src_ids"][0].as_py() + out["tgt_ids"][0].as_py()
    assert ids and UNK not in ids and max(ids) < spec["vocab_size"]
    assert tok.decode(out["src_ids"][0].as_py()) == "the tac dogs sat."
    # A character never seen in train is <unk>.
    assert UNK in texttok.encode(table([("zzz", "ñ")]), COLS, art)["src_ids"][0].as_py()


def test_cased_bpe_decodes_to_the_text_as_written() -> None:
    """Spacing, case and punctuation come back from the ids alone: nothing to truecase or
    detokenise after a translator that reads and writes these pieces."""
    art = fit(TRAIN * 5, kind="bpe", vocab_size=80, min_freq=1, lowercase=False)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(art["tokenizer.json"])
    text = "The dogs sat, the cat ran."
    ids = texttok.encode(table([(text, "Los gatos")]), COLS, art)["src_ids"][0].as_py()
    assert UNK not in ids and tok.decode(ids) == text


def suite_for(art: dict) -> Suite:
    return Suite(
        "toy.tokens", texttok.suite_expectations(COLS, art), schema=texttok.tokens_schema(COLS)
    )


def test_suite_passes_good_tokens_and_catches_an_id_beyond_the_vocabulary() -> None:
    art = fit(TRAIN, min_freq=1)
    good = texttok.encode(table(TRAIN), COLS, art)
    assert validate(good, suite_for(art), where="good").success
    size = art["spec.json"]["vocab_size"]
    ids = good["src_ids"].to_pylist()
    ids[2][1] = size  # one id out of range, in row 2
    bad = good.set_column(3, "src_ids", pa.array(ids, pa.list_(pa.int32())))
    res = validate(bad, suite_for(art), where="bad")
    assert not res.success
    failed = [f for f in res.failures if "src_ids.max" in f.expectation]
    assert failed and failed[0].rows == [2]


def test_suite_catches_empty_id_lists_and_empty_text() -> None:
    art = fit(TRAIN, min_freq=1)
    bad = texttok.encode(table([("...", "ok"), ("", "ok")]), COLS, art)
    bad = bad.set_column(3, "src_ids", pa.array([[], [4]], pa.list_(pa.int32())))
    res = validate(bad, suite_for(art), where="bad")
    text = " ".join(f.expectation for f in res.failures)
    assert not res.success and "src_ids.len" in text and "'src.len'" in text


# --- the hop, with a text adapter built on texttok ------------------------------------


class ToyPlain(Corpus):
    """A text adapter registered only in this test, without the token_stats hook."""

    name = "toyplain"
    TokenizeConfig = TextTokenizeConfig

    def fit(self, train, cfg):
        return texttok.fit(train, COLS, cfg)

    def tokenize(self, t, artifacts, cfg):
        return texttok.encode(t, COLS, artifacts, cfg)

    def tokens_suite(self, artifacts, cfg):
        return suite_for(artifacts)


class ToyText(ToyPlain):
    """The same, with the hook: the hop reports its statistics per split."""

    name = "toytext"

    def token_stats(self, path, artifacts, cfg):
        return texttok.token_stats(path, COLS, artifacts)


def test_hop_fits_on_train_only_and_writes_token_report(tmp_path: Path, monkeypatch) -> None:
    from stages import corpora
    from stages.tokenize import stats_path

    root = tmp_path / "project"
    root.mkdir()
    write_params(
        root,
        {"tokenize": {name: {"kind": "word", "min_freq": 1} for name in ("toytext", "toyplain")}},
    )
    for name, cls in (("toytext", "ToyText"), ("toyplain", "ToyPlain")):
        monkeypatch.setitem(corpora.REGISTRY, name, f"tests.data.test_texttok:{cls}")
        sampled = data_dir("sample", name, root)
        sampled.mkdir(parents=True)
        pq.write_table(table(TRAIN), sampled / "train.parquet")
        pq.write_table(
            table([("The zebra sat.", "El gato se sentó.")], 10), sampled / "validation.parquet"
        )
        pq.write_table(table([("A dog ran.", "Un perro corrió.")], 20), sampled / "test.parquet")
        assert run_hop("tokenize", name, root) == 0

    out = data_dir("tokenize", "toytext", root)
    vocab = json.loads((out / "vocab.json").read_text())
    assert "zebra" not in vocab and vocab[:4] == list(SPECIALS)
    val = pq.read_table(out / "validation.parquet")
    assert codec.decode(
        val["src_ids"][0].as_py(), {"spec.json": {"kind": "word"}, "vocab.json": vocab}
    ) == ["the", "<unk>", "sat", "."]
    assert codec.load_artifacts(out)["vocab.json"] == vocab
    report = json.loads(stats_path("toytext", root).read_text())
    assert report["splits"]["train"]["columns"]["src"]["unk_rate"] == 0.0
    assert report["splits"]["validation"]["columns"]["src"]["unk_rate"] == 0.25
    assert report["splits"]["test"]["rows"] == 1
    # Without the hook: rows per split only (every corpus has the metric file DVC declares).
    plain = json.loads(stats_path("toyplain", root).read_text())
    assert plain["splits"] == {"train": {"rows": 4}, "validation": {"rows": 1}, "test": {"rows": 1}}
