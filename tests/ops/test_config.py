"""params.yaml → typed config, and profiles overlaid onto params.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

import rnnflow.config as config
from pipelines.ops import params as P
from rnnflow.env import PROJECT_ROOT
from stages.core.catalogue import with_catalogue
from stages.core.config import SourcedFetchConfig
from stages.sample import SampleConfig
from tests.ops.conftest import copy_params


def test_unknown_key_is_an_error() -> None:
    params = {"sample": {"mnist": {"seed": 0, "trian": 10}}}
    with pytest.raises(config.ConfigError, match="sample.mnist"):
        config.parse(SampleConfig, params, "sample.mnist")


def test_missing_section_names_the_key() -> None:
    with pytest.raises(config.ConfigError, match="sample.books"):
        config.section({"sample": {"mnist": {}}}, "sample.books")


def test_sample_size_must_be_positive() -> None:
    with pytest.raises(config.ConfigError):
        config.parse(SampleConfig, {"s": {"train": 1.5}}, "s")


def test_real_params_parse_and_name_checksums() -> None:
    params = with_catalogue(config.load_params(PROJECT_ROOT / "params.yaml"), "mnist", PROJECT_ROOT)
    cfg = config.parse(SourcedFetchConfig, params, "fetch.mnist")
    assert cfg.source == ["published", "mirror_partial"]
    for source in cfg.sources.values():
        for f in source.files.values():
            assert f.pinned
            algo, _, digest = f.checksum.partition(":")
            assert algo in {"md5", "sha256"} and len(digest) in {32, 64}


@pytest.fixture
def params_copy(tmp_path: Path) -> Path:
    return copy_params(tmp_path)


def test_profile_applies_once_and_keeps_comments(params_copy: Path) -> None:
    from pipelines.ops.params import apply_profile

    before = params_copy.read_text()
    changed = apply_profile(params_copy.parent, "ci")
    assert "fetch.parity.n" in changed and "train.models.mnist_cnn.epochs" in changed
    after = params_copy.read_text()
    assert "# rnnflow params" in after  # comments survive
    merged = config.load_params(params_copy)
    assert merged["fetch"]["parity"]["n"] == 4000
    assert merged["train"]["models"]["mnist_cnn"]["epochs"] == 1
    # Everything the profile does not name is untouched.
    assert (
        merged["train"]["models"]["mnist_cnn"]["lr"]
        == config.load_params(PROJECT_ROOT / "params.yaml")["train"]["models"]["mnist_cnn"]["lr"]
    )
    assert apply_profile(params_copy.parent, "ci") == {}
    assert params_copy.read_text() == after != before


def test_unknown_profile_lists_known(params_copy: Path) -> None:
    from pipelines.ops.params import apply_profile

    with pytest.raises(config.ConfigError, match="ci"):
        apply_profile(params_copy.parent, "nope")


def test_flatten_gives_dvc_set_param_form() -> None:
    assert config.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}}) == {"a.b": 1, "a.c.d": [1, 2]}


def test_profiles_change_sizes_not_sources() -> None:
    """Sources are chosen by availability (params' ordered lists), never by a profile."""
    for path in sorted((PROJECT_ROOT / "profiles").glob("*.yaml")):
        overlay = config.flatten(config.load_params(path))
        assert not [k for k in overlay if ".source" in k], path


def test_exp_run_arguments_parse_as_dvc_overrides(params_copy: Path) -> None:
    """`rnnflow profile ci --dry-run` prints `-S` overrides in Hydra's grammar: lists without
    spaces, null and true as YAML spells them, so `dvc exp run` reads the same values."""
    from rnnflow.cli import override_value, set_params_args

    assert override_value([500, 2000]) == "[500,2000]"
    assert override_value(None) == "null" and override_value(True) == "true"
    assert override_value("cosine") == "cosine" and override_value("a b") == '"a b"'
    args = set_params_args("ci", params_copy.parent)
    assert args[0] == "-S" and "train.models.mnist_cnn.epochs=1" in args
    assert "+train.models.books_lm.max_batches=15" in args  # not in params.yaml: added


def test_a_field_of_another_family_is_an_error_naming_model_family_and_field() -> None:
    """Each family has its own config: a field it does not take (another family's, or a
    decoding setting, which is evaluate's) is refused before anything runs."""
    from pipelines.config import TrainConfig

    ConfigError, parse = config.ConfigError, config.parse

    def models(**entry) -> dict:
        return {"train": {"models": {"digits": {"corpus": "mnist", "epochs": 1, **entry}}}}

    cases = [
        ({"family": "cnn_bn", "beam": 5}, "'beam' is not a field of family 'cnn_bn'"),
        ({"family": "logreg", "hidden": 8}, "'hidden' is not a field of family 'logreg'"),
        ({"family": "mlp", "bptt": 35}, "'bptt' is not a field of family 'mlp'"),
    ]
    for entry, message in cases:
        with pytest.raises(ConfigError, match=f"model 'digits': {message} \\(its fields: "):
            parse(TrainConfig, models(**entry), "train")
    with pytest.raises(ConfigError, match="model 'digits': family 'gpt' is not one of"):
        parse(TrainConfig, models(family="gpt"), "train")
    cfg = parse(TrainConfig, models(family="mlp", hidden=8), "train").model("digits")
    assert (type(cfg).__name__, cfg.hidden) == ("MLPConfig", 8)


def test_a_copying_seq2seq_needs_attention_and_teacher_forcing() -> None:
    """copy_source is refused with settings it cannot train with, before anything runs."""
    from pipelines.config import model_config

    base = {"corpus": "twitter", "family": "seq2seq", "epochs": 1, "copy_source": True}
    assert model_config(base).copy_source
    for bad in ({"attention": "none"}, {"teacher_forcing": 0.5}):
        with pytest.raises(ValueError, match="copy_source needs attention and teacher_forcing 1"):
            model_config({**base, **bad})


def test_negative_training_is_refused_across_processes() -> None:
    """Its greedy decoding runs outside DistributedDataParallel's forward: one process only."""
    from pipelines.config import model_config

    base = {"corpus": "twitter", "family": "seq2seq", "epochs": 1, "negative": {"weight": 1}}
    assert model_config(base).negative.max_repeats == 2
    for bad in ({"nproc": 2}, {"nnodes": 2, "rdzv_endpoint": "host:29500"}):
        with pytest.raises(ValueError, match="negative trains in one process"):
            model_config({**base, **bad})


def test_decoding_settings_for_a_model_not_trained_are_an_error() -> None:
    """A typo in an ``evaluate.models`` name would otherwise decode with the defaults."""
    from pipelines.ops.params import check_params

    params = config.load_params(PROJECT_ROOT / "params.yaml")
    params["evaluate"]["models"]["es_en_translater"] = {"beam": 3}
    with pytest.raises(config.ConfigError, match="evaluate.models.es_en_translater: no model"):
        check_params(params)


def test_set_params_keeps_comments_and_rejects_unknown_sections(tmp_path):
    from rnnflow.config import ConfigError

    path = copy_params(tmp_path)
    key = "train.models.mnist_cnn"
    changed = P.set_params(path, {f"{key}.lr": 0.01, f"{key}.weight_decay": 0.0001})
    assert changed == {f"{key}.lr": (0.003, 0.01), f"{key}.weight_decay": (None, 0.0001)}
    text = path.read_text()
    assert "# rnnflow params" in text and "lr: 0.01" in text
    assert P.set_params(path, {f"{key}.lr": 0.01}) == {}
    with pytest.raises(ConfigError, match="nosuch"):
        P.set_params(path, {"train.nosuch.lr": 1})
    with pytest.raises(ConfigError, match="'max_batches' is not a field of family 'cnn_bn'"):
        P.set_params(path, {f"{key}.max_batches": 5})
    assert P.parse_assignments(["a.b=3", "c=[1, 2]", "d=x"]) == {"a.b": 3, "c": [1, 2], "d": "x"}
