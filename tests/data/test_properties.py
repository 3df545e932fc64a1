"""Property-based tests (Hypothesis) of the format-level code: the word codec, the IDX parser,
hash splits and the text readers. Each writes its own small, format-exact files in a temp
directory; the whole file runs in well under a minute.
"""

from __future__ import annotations

import gzip
import struct
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from rnnflow import codec
from stages.core.hashing import in_sorted, row_hash, uniform
from stages.corpora import texttok
from stages.corpora.idx import IDX_DTYPES, IdxError, read_idx, write_idx
from stages.corpora.text.formats import TextSourceError, read_alternating, read_parallel, read_tsv
from stages.corpora.texttok import SPECIALS, UNK, TextTokenizeConfig
from stages.format import SplitConfig, assign_hash

FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


_BASE: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def _base_dir(tmp_path_factory):
    _BASE[:] = [tmp_path_factory.mktemp("examples")]
    yield
    _BASE.clear()


def _tmpdir() -> Path:
    """A fresh directory per example (``tmp_path`` is shared by all examples of a test)."""
    return Path(tempfile.mkdtemp(dir=_BASE[0]))


# --- the word codec: encode then decode keeps every in-vocabulary word -------------------

# Letters (accented, Greek, CJK), digits, combining marks, punctuation, symbols, spaces.
WORDY = st.text(st.sampled_from(list("abcAB çéÉñßΣσ日本٣3 ́.,!?¿'\"-_<>/@#\t\u00a0")), max_size=30)


@FAST
@given(
    train=st.lists(WORDY, min_size=1, max_size=12),
    other=st.lists(WORDY, max_size=6),
    min_freq=st.integers(1, 3),
    lowercase=st.booleans(),
)
def test_word_codec_round_trip_keeps_in_vocabulary_words(train, other, min_freq, lowercase):
    cfg = TextTokenizeConfig(min_freq=min_freq, lowercase=lowercase)
    tbl = pa.table({"row_id": pa.array(range(len(train)), pa.uint64()), "text": train})
    art = texttok.fit(tbl.to_batches(max_chunksize=3), ("text",), cfg)
    vocab = art["vocab.json"]
    assert vocab[: len(SPECIALS)] == list(SPECIALS) and len(set(vocab)) == len(vocab)
    known = set(vocab[len(SPECIALS) :])
    words = codec.pretokenize(pa.array(train), lowercase).to_pylist()
    counts = Counter(w for row in words for w in row)
    assert known == {w for w, n in counts.items() if n >= min_freq}

    texts = train + other
    ids = codec.encode_word(pa.array(texts), vocab, lowercase)
    assert ids.type == pa.list_(pa.int32())
    for text, row, tokens in zip(
        texts, ids.to_pylist(), codec.pretokenize(pa.array(texts), lowercase).to_pylist()
    ):
        assert all(0 <= i < len(vocab) for i in row)
        decoded = codec.decode(row, art)
        assert decoded == [t if t in known else SPECIALS[UNK] for t in tokens], text
        # No text ever encodes to pad/bos/eos: those are the models' to add.
        assert not set(row) & {0, 1, 2}


# --- the IDX parser: a clean array or IdxError, nothing else ----------------------------

CODES = sorted(IDX_DTYPES)


@FAST
@given(
    data=st.binary(max_size=64),
    how=st.sampled_from(["raw", "gzipped", "raw named .gz"]),
    dims=st.integers(1, 3),
    code=st.sampled_from(CODES),
)
def test_idx_random_bytes_never_crash(data, how, dims, code):
    path = _tmpdir() / ("f" if how == "raw" else "f.gz")
    path.write_bytes(gzip.compress(data, mtime=0) if how == "gzipped" else data)
    try:
        arr = read_idx(path, dims=dims, dtype_code=code)
    except IdxError as exc:
        assert str(path) in str(exc)
    else:
        assert arr.ndim == dims and arr.dtype == IDX_DTYPES[code].newbyteorder("=")


@FAST
@given(
    magic=st.sampled_from([b"\0\0", b"\0\x01", b"\x01\0", b"\x1f\x8b"]),
    code=st.sampled_from(CODES + [0x00, 0x0A, 0xFF]),
    want_code=st.sampled_from(CODES),
    ndim=st.integers(0, 4),
    want=st.integers(1, 3),
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4),
    delta=st.integers(-9, 9),
    gz=st.booleans(),
)
def test_idx_headers_that_disagree_are_idx_errors(
    magic, code, want_code, ndim, want, shape, delta, gz
):
    """Wrong magic, dtype, dimension count, or a payload longer/shorter than the dims say."""
    shape = (shape + [1] * 4)[:ndim]
    header = magic + bytes([code, ndim]) + struct.pack(f">{ndim}I", *shape)
    itemsize = IDX_DTYPES.get(code, np.dtype("u1")).itemsize
    size = max(0, int(np.prod(shape, dtype=np.int64)) * itemsize + delta)
    payload = bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8))
    raw = header + payload
    path = _tmpdir() / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    ok = magic == b"\0\0" and code == want_code and ndim == want and delta == 0
    if ok:
        arr = read_idx(path, dims=want, dtype_code=want_code)
        assert arr.shape == tuple(shape)
        assert arr.tobytes() == np.frombuffer(payload, IDX_DTYPES[code]).astype(arr.dtype).tobytes()
    else:
        with pytest.raises(IdxError, match="x"):
            read_idx(path, dims=want, dtype_code=want_code)


@FAST
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    code=st.sampled_from(CODES),
    gz=st.booleans(),
    cut=st.floats(0, 1, exclude_max=True),
    seed=st.integers(0, 99),
)
def test_idx_round_trip_and_every_truncation_fails(shape, code, gz, cut, seed):
    dtype = IDX_DTYPES[code]
    rng = np.random.default_rng(seed)
    arr = rng.integers(-100, 100, size=shape).astype(dtype.newbyteorder("="))
    path = _tmpdir() / ("a.gz" if gz else "a")
    write_idx(path, arr, gzip_=gz)
    back = read_idx(path, dims=len(shape), dtype_code=code)
    assert back.shape == arr.shape and np.array_equal(back, arr)
    full = path.read_bytes()
    path.write_bytes(full[: int(len(full) * cut)])  # strictly shorter
    with pytest.raises(IdxError):
        read_idx(path, dims=len(shape), dtype_code=code)


# --- hash splits: stable, disjoint, in proportion ---------------------------------------

FRACTIONS = st.tuples(st.floats(0, 0.4), st.floats(0, 0.4))


def _ids(values: list[str]) -> pa.Array:
    return row_hash(pa.table({"text": pa.array(values, pa.string())}), ("text",))


@FAST
@given(
    values=st.lists(st.text(max_size=12), min_size=1, max_size=60),
    frac=FRACTIONS,
    seed=st.integers(0, 2**63 - 1),
    data=st.data(),
)
def test_hash_split_is_stable_and_per_row(values, frac, seed, data):
    cfg = SplitConfig(validation=frac[0], test=frac[1], seed=seed)
    ids = _ids(values)
    split = assign_hash(ids, "all", cfg)
    # Same input, same split, however often and in whatever company it is computed.
    assert np.array_equal(split, assign_hash(_ids(list(values)), "all", cfg))
    order = data.draw(st.permutations(range(len(values))))
    again = assign_hash(_ids([values[i] for i in order]), "all", cfg)
    assert np.array_equal(again, split[order])
    # Disjoint: every row in exactly one split, and equal content always in the same one.
    assert set(split) <= {"train", "validation", "test"}
    where: dict[str, str] = {}
    for v, s in zip(values, split):
        assert where.setdefault(v, s) == s
    # The uniform behind it is in [0, 1) and only the id and seed matter.
    u = uniform(ids, seed)
    assert ((u >= 0) & (u < 1)).all()


@settings(max_examples=40, deadline=None)
@given(frac=FRACTIONS, seed=st.integers(0, 2**63 - 1), start=st.integers(0, 10**9))
@example(frac=(1.192092896e-07, 0.39696095580984664), seed=4003, start=0)  # 1 row at n * p = 0.005
def test_hash_split_proportions(frac, seed, start):
    n = 40_000
    table = pa.table({"k": pa.array(np.arange(start, start + n, dtype=np.int64))})
    split = assign_hash(
        row_hash(table, ("k",)), "all", SplitConfig(validation=frac[0], test=frac[1], seed=seed)
    )
    for name, p in (("validation", frac[0]), ("test", frac[1]), ("train", 1 - frac[0] - frac[1])):
        got = float(np.mean(split == name))
        # 6 binomial sigmas, plus 2 rows: where n * p is far below 1 the normal bound is 0
        # rows, yet one row lands there with probability n * p (about 0.5 % at p = 1e-7).
        assert abs(got - p) <= 6 * (p * (1 - p) / n) ** 0.5 + 2 / n, (name, got, p)


@FAST
@given(
    values=st.lists(st.text(max_size=8), min_size=1, max_size=40, unique=True),
    val=st.floats(0, 0.5),
    seed=st.integers(0, 2**32),
)
def test_given_split_keeps_test_and_holds_validation_out_of_train(values, val, seed):
    cfg = SplitConfig(method="given", validation=val, seed=seed)
    ids = _ids(values)
    assert (assign_hash(ids, "test", cfg) == "test").all()
    train = assign_hash(ids, "train", cfg)
    assert set(train) <= {"train", "validation"}
    assert np.array_equal(train, assign_hash(ids, "train", cfg))


# --- text readers: exact round trip of well-formed files --------------------------------

# Field text: anything but the line terminator \n, a \r (CRLF ends are added separately),
# a tab (TSV separator) and a BOM; U+2028, U+0085, U+2029, \v and \f are ordinary characters.
FIELD_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\t\ufeff")
FIELD = st.text(
    st.one_of(
        FIELD_CHARS, st.sampled_from(["\u2028", "\u0085", "\u2029", "\x0b", "\x0c", " ", "é", "日"])
    ),
    max_size=15,
)
EOL = st.sampled_from(["\n", "\r\n"])


def _write(lines: list[str], eols: list[str], final: bool, gz: bool, bom: bool) -> Path:
    text = "".join(ln + e for ln, e in zip(lines, eols))
    if not final:  # no line end after the last line
        text = text[: -len(eols[-1])]
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    path = _tmpdir() / ("src.txt.gz" if gz else "src.txt")
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def _eols(data, n: int) -> list[str]:
    return data.draw(st.lists(EOL, min_size=n, max_size=n))


def _collect(tables, columns) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {c: [] for c in columns}
    for t in tables:
        assert t.column_names == list(columns)
        for c in columns:
            assert t.column(c).null_count == 0
            out[c] += t.column(c).to_pylist()
    return out


@FAST
@given(
    rows=st.lists(st.lists(FIELD, min_size=2, max_size=2), min_size=1, max_size=12),
    ncols=st.integers(1, 3),
    final=st.booleans(),
    gz=st.booleans(),
    bom=st.booleans(),
    chunk=st.integers(1, 5),
    data=st.data(),
)
def test_tsv_round_trip(rows, ncols, final, gz, bom, chunk, data):
    rows = [(r * 2)[:ncols] for r in rows]
    lines = ["\t".join(r) for r in rows]
    assume(final or lines[-1] != "")  # an empty last line with no line end is no line
    path = _write(lines, _eols(data, len(lines)), final, gz, bom)
    cols = [f"c{i}" for i in range(ncols)]
    got = _collect(read_tsv(path, cols, chunk), cols)
    assert got == {c: [r[i] for r in rows] for i, c in enumerate(cols)}


@FAST
@given(
    rows=st.lists(st.lists(FIELD, min_size=2, max_size=2), min_size=1, max_size=10),
    bad=st.data(),
    final=st.booleans(),
    chunk=st.integers(1, 5),
)
def test_tsv_field_with_a_tab_is_an_error_naming_the_line(rows, bad, final, chunk):
    i = bad.draw(st.integers(0, len(rows) - 1))
    rows[i] = [rows[i][0] + "\t" + bad.draw(FIELD), rows[i][1]]  # 3 fields where 2 are due
    lines = ["\t".join(r) for r in rows]
    path = _write(lines, _eols(bad, len(lines)), final, False, False)
    with pytest.raises(TextSourceError, match=rf"line {i + 1}\b"):
        for _ in read_tsv(path, ["a", "b"], chunk):
            pass


@FAST
@given(
    pairs=st.lists(
        st.tuples(FIELD.filter(lambda s: "\t" not in s), FIELD), min_size=1, max_size=12
    ),
    final=st.tuples(st.booleans(), st.booleans()),
    gz=st.tuples(st.booleans(), st.booleans()),
    bom=st.booleans(),
    chunk=st.integers(1, 5),
    data=st.data(),
)
def test_parallel_round_trip(pairs, final, gz, bom, chunk, data):
    paths = []
    for side in (0, 1):
        lines = [p[side] for p in pairs]
        assume(final[side] or lines[-1] != "")
        paths.append(_write(lines, _eols(data, len(lines)), final[side], gz[side], bom))
    got: list[list[str]] = [[], []]
    for a, b in read_parallel([(p, None) for p in paths], chunk):
        assert len(a) == len(b)
        got[0] += a.to_pylist()
        got[1] += b.to_pylist()
    assert got == [[p[0] for p in pairs], [p[1] for p in pairs]]


@FAST
@given(
    lines=st.lists(FIELD, min_size=1, max_size=8),
    extra=st.integers(1, 3),
    chunk=st.integers(1, 5),
    data=st.data(),
)
def test_parallel_files_of_different_lengths_are_an_error(lines, extra, chunk, data):
    a = _write(lines, _eols(data, len(lines)), True, False, False)
    longer = lines + ["x"] * extra
    b = _write(longer, _eols(data, len(longer)), True, False, False)
    with pytest.raises(TextSourceError, match="differ in length"):
        for _ in read_parallel([(a, None), (b, None)], chunk):
            pass


@FAST
@given(
    pairs=st.lists(st.tuples(FIELD, FIELD), min_size=1, max_size=10),
    final=st.booleans(),
    gz=st.booleans(),
    bom=st.booleans(),
    chunk=st.integers(1, 5),
    odd=st.booleans(),
    data=st.data(),
)
def test_alternating_round_trip_and_odd_count(pairs, final, gz, bom, chunk, odd, data):
    lines = [x for p in pairs for x in p] + (["orphan"] if odd else [])
    assume(final or lines[-1] != "")
    path = _write(lines, _eols(data, len(lines)), final, gz, bom)
    if odd:
        with pytest.raises(TextSourceError, match=f"line {len(lines)}"):
            for _ in read_alternating(path, chunk):
                pass
        return
    got = _collect(read_alternating(path, chunk), ("context", "response"))
    assert got == {"context": [p[0] for p in pairs], "response": [p[1] for p in pairs]}


_U64 = st.integers(0, 2**64 - 1)


@FAST
@given(st.lists(_U64, max_size=50), st.lists(_U64, max_size=50), st.data())
def test_membership_in_held_out_hashes_is_numpys(values, held, data):
    """Format's binary-search membership test answers as ``np.isin``, at the ends of the sorted
    set too (hashes below its first, above its last, equal to either)."""
    held_arr = np.unique(np.array(held, dtype=np.uint64))
    if held and values:  # make some values members
        values = values + data.draw(st.lists(st.sampled_from(held), max_size=5))
    x = np.array(values, dtype=np.uint64)
    np.testing.assert_array_equal(in_sorted(x, held_arr), np.isin(x, held_arr))
