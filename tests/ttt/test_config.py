"""TTTConfig: the card's defaults, validation naming the field, and the Hydra group file."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medreason.ttt import TTTConfig

CONF = Path(__file__).resolve().parents[2] / "conf" / "ttt" / "finemedlm_o1.yaml"


def test_defaults_are_the_finemedlm_o1_card():
    config = TTTConfig()
    assert (config.k, config.learning_rate, config.epochs, config.max_length, config.weight_decay) == (
        1,
        5e-7,
        2,
        8192,
        0.01,
    )
    assert (config.mode, config.encoder) == ("full", "BAAI/bge-large-en-v1.5")


def test_group_file_composes_to_the_card_config():
    fields = OmegaConf.to_container(OmegaConf.load(CONF), resolve=False)
    assert fields.pop("corpus_path") == "???"
    assert TTTConfig(**fields) == TTTConfig()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "qlora", "TTTConfig.mode='qlora'"),
        ("k", 0, "TTTConfig.k must be >= 1"),
        ("steps", 0, "TTTConfig.steps must be >= 1"),
        ("learning_rate", 0.0, "TTTConfig.learning_rate must be > 0"),
        ("min_similarity", 1.5, "TTTConfig.min_similarity=1.5"),
        ("record_format", "csv", "TTTConfig.record_format='csv'"),
    ],
)
def test_invalid_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TTTConfig(**{field: value})


def test_fingerprint_tracks_what_changes_generations():
    base = TTTConfig()
    assert base.fingerprint() != TTTConfig(learning_rate=1e-6).fingerprint()
    assert base.fingerprint() != TTTConfig(mode="lora").fingerprint()
    assert base.fingerprint() == TTTConfig(embedding_cache_dir=None, generation_batch_size=1).fingerprint()
