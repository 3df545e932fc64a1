"""The main job where there is no mirror: a loopback HTTP server stands in for the internet.

A fresh copy of the project whose published URLs point at the loopback server (which serves
small, format-exact files in each published layout: MNIST IDX gz, the OPUS Moses zip, the
manythings zip, the alternating-lines gz, Gutenberg books) runs the README's command,
``make repro PROFILE=ci``, with ``$RNNFLOW_MIRROR`` unset and no ``../shared`` beside it. It
must fetch every corpus from its published source, record the unpinned files in
``sources/<corpus>.lock``, and train and evaluate every model. Then the run goes to a DVC
remote with ``dvc push``; a second clone ``dvc pull``s it, is up to date, and translates
without training.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnflow.config import dump_yaml, load_params
from tests.conftest import copy_checkout, sh
from tests.data.loopback import Server, self_signed_cert, serving
from tests.data.text_mirror import GUTENBERG_FOOTER, GUTENBERG_HEADER

pytestmark = pytest.mark.slow

WORDS_ES = [
    "el",
    "gato",
    "perro",
    "come",
    "bebe",
    "agua",
    "pan",
    "niño",
    "ve",
    "grande",
    "casa",
    "rojo",
    "y",
    "mira",
    "libro",
]
ES_EN = dict(
    zip(
        WORDS_ES,
        [
            "the",
            "cat",
            "dog",
            "eats",
            "drinks",
            "water",
            "bread",
            "boy",
            "sees",
            "big",
            "house",
            "red",
            "and",
            "looks",
            "book",
        ],
    )
)


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def _zip(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _idx(array: np.ndarray) -> bytes:
    code = 0x08  # unsigned byte
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def published_files(rng: np.random.Generator) -> dict[str, bytes]:
    """Every published file, by URL path on the loopback server."""
    files: dict[str, bytes] = {}
    for part, n in (("train", 1200), ("t10k", 300)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        images[np.arange(n), labels * 2 + 4, 4:24] = 255
        files[f"mnist/{part}-images-idx3-ubyte.gz"] = _idx(images)
        files[f"mnist/{part}-labels-idx1-ubyte.gz"] = _idx(labels)

    def pair(i: int) -> tuple[str, str]:
        words = [str(w) for w in rng.choice(WORDS_ES, size=int(rng.integers(3, 8)))]
        # A number makes every sentence distinct, so no held-out sentence repeats in train.
        return " ".join(words) + f" {i}.", " ".join(ES_EN[w] for w in words) + f" {i}."

    subs = [pair(i) for i in range(700)]
    files["opus/en-es.txt.zip"] = _zip(
        {
            "README": "OPUS fixture\n",
            "OpenSubtitles.en-es.es": "".join(es + "\n" for es, _ in subs),
            "OpenSubtitles.en-es.en": "".join(en + "\n" for _, en in subs),
        }
    )
    tatoeba = [pair(i) for i in range(1000, 1900)]
    files["anki/spa-eng.zip"] = _zip(
        {
            "_about.txt": "fixture\n",
            "spa.txt": "".join(
                f"{en}\t{es}\tCC-BY 2.0 (France) #{i}\n" for i, (es, en) in enumerate(tatoeba)
            ),
        }
    )
    lines = []
    for i in range(600):
        lines += [
            f"@user{i} what do you think about the {WORDS_ES[i % 15]} number {i} ?",
            f"i think it is {ES_EN[WORDS_ES[(i * 7) % 15]]} and fine {i} !",
        ]
    files["twitter/twitter_en.txt.gz"] = _gz("".join(line + "\n" for line in lines))
    for book in (11, 84, 1342, 1661, 2600, 3261):
        body = []
        for p in range(120):
            words = [ES_EN[str(w)] for w in rng.choice(WORDS_ES, size=12)]
            body += [
                f"Paragraph {p} of book {book}: " + " ".join(words[:6]),
                " ".join(words[6:]) + ".",
                "",
            ]
        files[f"gutenberg/{book}/pg{book}.txt"] = "\n".join(
            GUTENBERG_HEADER + body + GUTENBERG_FOOTER
        ).encode()
    speeches = []
    for s in range(300):
        speeches += [f"Citizen {s}:", f"the {ES_EN[WORDS_ES[s % 15]]} speaks line {s}.", ""]
    files["shakespeare/input.txt"] = "\n".join(speeches).encode()
    return files


#: The corpora with a source catalogue (``sources/<corpus>.yaml``).
CATALOGUED = ("mnist", "es_en", "twitter", "books")


def point_params_at(root: Path, base: str, files: dict[str, bytes]) -> None:
    """The copy's source catalogues: each published source's URL on the loopback server; the
    fixture MNIST files pinned by their own sha256 (the real md5s name the real files); and
    its params: a short network policy."""
    fetch = {c: {"sources": load_params(root / "sources" / f"{c}.yaml")} for c in CATALOGUED}
    mnist = fetch["mnist"]["sources"]["published"]
    mnist["urls"] = [base + "mnist/"]
    for f in mnist["files"].values():
        f["checksum"] = "sha256:" + hashlib.sha256(files["mnist/" + f["path"]]).hexdigest()
    mnist["rows"] = {"train": 1200, "test": 300}
    fetch["es_en"]["sources"]["opensubtitles"]["urls"] = [base + "opus/"]
    fetch["es_en"]["sources"]["tatoeba"]["urls"] = [base + "anki/"]
    fetch["twitter"]["sources"]["published"]["urls"] = [base + "twitter/"]
    fetch["books"]["sources"]["gutenberg"]["urls"] = [base + "gutenberg/"]
    fetch["books"]["sources"]["tinyshakespeare"]["urls"] = [base + "shakespeare/"]
    for corpus, section in fetch.items():
        dump_yaml(section["sources"], root / "sources" / f"{corpus}.yaml")
    params = load_params(root / "params.yaml")
    params["fetch"]["network"] = {"retries": 2, "timeout_s": 30, "backoff_s": 0.1}
    # Block style, as params.yaml is written: `dvc exp run -S` keeps a file's style, and a
    # URL in a flow sequence (`urls: [http://127.0.0.1:8000/]`) is an error for libyaml.
    dump_yaml(params, root / "params.yaml")


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[Path, Path]:
    """The loopback server's certificate: unpinned files come over https only."""
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def served(tls):
    with serving(Server(files=published_files(np.random.default_rng(0))), tls=tls) as state:
        yield state


@pytest.fixture(scope="module")
def online_run(served: Server, tls, tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    """A copy of the project (no mirror beside it) after `make repro PROFILE=ci`."""
    top = tmp_path_factory.mktemp("online")
    root = copy_checkout(top / "rnnflow")
    point_params_at(root, served.base, served.files)
    # first use everywhere: no committed locks copied
    assert not list((root / "sources").glob("*.lock"))
    venv = Path(sys.executable).parent.parent
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RNNFLOW_MIRROR", "PREFECT_API_URL") and "proxy" not in k.lower()
    }
    env.update(
        {
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "PREFECT_HOME": str(root / ".prefect"),
            "PYTHONPATH": str(root),
            "SSL_CERT_FILE": str(tls[0]),
            "GIT_AUTHOR_NAME": "ci",
            "GIT_AUTHOR_EMAIL": "ci@localhost",
            "GIT_COMMITTER_NAME": "ci",
            "GIT_COMMITTER_EMAIL": "ci@localhost",
        }
    )
    sh(["git", "init", "-q"], root, env)
    sh(["git", "config", "user.name", "ci"], root, env)
    sh(["git", "config", "user.email", "ci@localhost"], root, env)
    store = top / "store"
    # The default remote, pointed at a temporary store (committed, so clones share it).
    sh(["dvc", "remote", "modify", "store", "url", str(store)], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "copy of the project"], root, env)
    # The README's command, with this interpreter's venv (`-o` keeps make from reinstalling).
    out = sh(["make", "repro", "PROFILE=ci", f"VENV={venv}", "-o", f"{venv}/.installed"], root, env)
    return root, env, out


def test_every_corpus_comes_from_its_published_source(online_run, served: Server) -> None:
    root, _, out = online_run
    assert not (root.parent / "shared").exists()
    for corpus, parts in (
        ("mnist", {"mnist": "published"}),
        ("es_en", {"opensubtitles": "opensubtitles", "tatoeba": "tatoeba"}),
        ("twitter", {"twitter": "published"}),
        ("books", {"gutenberg": "gutenberg", "tinyshakespeare": "tinyshakespeare"}),
    ):
        report = json.loads((root / "reports" / "fetch" / f"{corpus}.json").read_text())
        assert report["sources"] == parts, report
        assert {f["served_by"] for f in report["files"].values()} == {"download"}
        assert all(f["url"].startswith(served.base) for f in report["files"].values())
    served_paths = {p.lstrip("/") for p, _ in served.requests}
    assert served_paths == set(served.files), set(served.files) - served_paths


def test_first_use_is_locked_for_every_unpinned_file(online_run, served: Server) -> None:
    root, _, _ = online_run
    locks = {
        c: json.loads((root / "sources" / f"{c}.lock").read_text())["sources"]
        for c in ("mnist", "es_en", "twitter", "books")
    }
    assert locks["mnist"] == {}  # pinned in params: nothing to trust
    assert set(locks["es_en"]) == {"opensubtitles", "tatoeba"}
    assert set(locks["books"]["gutenberg"]) == {
        "pg11",
        "pg84",
        "pg1342",
        "pg1661",
        "pg2600",
        "pg3261",
    }
    entry = locks["twitter"]["published"]["pairs"]
    body = served.files["twitter/twitter_en.txt.gz"]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["size"] == len(body)


def test_every_model_trained_and_evaluated(online_run) -> None:
    root, _, out = online_run
    params = load_params(root / "params.yaml")
    assert params["train"]["models"]["mnist_cnn"]["epochs"] == 1  # the ci experiment's sizes
    for model in params["train"]["models"]:
        record = json.loads((root / "reports" / "evaluate" / f"{model}.json").read_text())
        assert record["test"]["n"] > 0, model
    assert "Starting temporary server" not in out  # one Prefect server for the whole run


def test_push_then_pull_gives_an_up_to_date_clone_that_translates(
    online_run, tmp_path: Path
) -> None:
    root, env, _ = online_run
    sh(["dvc", "push", "--run-cache"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "ci run"], root, env)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    env2 = {**env, "PYTHONPATH": str(clone), "PREFECT_HOME": str(clone / ".prefect")}
    sh(["dvc", "pull"], clone, env2)
    status = sh(["dvc", "status"], clone, env2)
    assert "up to date" in status, status
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.translate", "el gato come pan 3."],
        cwd=clone,
        env=env2,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() and "<unk>" not in out.stdout
