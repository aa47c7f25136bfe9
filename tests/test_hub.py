"""Pushing to the Hub: refused at config time without a token; uploads against a loopback stand-in of the
Hub's HTTP API (no network), one commit per stage, resumed after a failed commit without resending weights."""

import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
from hydra import compose, initialize_config_dir

from medreason.config import config_dir
from medreason.hub import HubConfigError, HubTarget, hub_targets, push_folder, push_to_hub
from medreason.recipe import validate_run_config
from medreason.stage_context import write_completion_marker
from medreason.testing.hub_server import FakeHubServer

TOKEN = "hf_test_token"
KINDS = {"sft": "sft", "dapo": "dapo", "eval": "eval"}


@pytest.fixture
def hub(monkeypatch):
    """The stand-in, with huggingface_hub talking LFS (not Xet) to it and allowed online."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHubServer(TOKEN) as server:
        yield server


@pytest.fixture
def final_dir(tiny_model_dir, tmp_path) -> Path:
    folder = tmp_path / "final"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").write_text("---\nlibrary_name: transformers\n---\n# tiny\n")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _tiny_cfg(tmp_path, *overrides):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=["+recipe=tiny", f"output_dir={tmp_path}", *overrides])


def test_push_without_a_token_is_refused_at_config_time(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    cfg = _tiny_cfg(tmp_path, "hub.push=true", "hub.model_id=me/tiny-med")
    with pytest.raises(HubConfigError, match="HF_TOKEN is not set"):
        validate_run_config(cfg)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    validate_run_config(cfg)
    with pytest.raises(HubConfigError, match=r"hub.model_id=USER/NAME"):
        validate_run_config(_tiny_cfg(tmp_path, "+stages.dapo.hub.push=true"))
    with pytest.raises(HubConfigError, match="not a Hub repository id"):
        validate_run_config(_tiny_cfg(tmp_path, "hub.push=true", "hub.model_id=no-namespace"))
    with pytest.raises(HubConfigError, match=r"stages.dapo.hub has unknown keys \['token'\]"):
        validate_run_config(_tiny_cfg(tmp_path, "+stages.dapo.hub.token=x"))


def test_run_wide_and_per_stage_targets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    cfg = _tiny_cfg(tmp_path, "hub.push=true", "hub.model_id=me/tiny-med", "+stages.dpo.hub.push=false",
                    "+stages.sft_all.hub.model_id=me/sft-only", "+stages.sft_all.hub.private=false")
    kinds = {name: cfg.stages[name].kind for name in cfg.stages}
    assert hub_targets(cfg, kinds) == [
        HubTarget("sft_all", "me/sft-only", private=False),
        HubTarget("sft_endocrinology", "me/tiny-med-sft_endocrinology", private=True),
        HubTarget("dapo", "me/tiny-med", private=True),  # the last training stage gets model_id itself
    ]


def test_upload_is_one_commit_of_the_whole_folder(hub, final_dir):
    target = HubTarget("dapo", "me/tiny-med", private=True)
    url = push_folder(final_dir, target, "medreason: stage dapo", hub.endpoint)
    repo = hub.repos["me/tiny-med"]
    assert repo.private and repo.commits == ["medreason: stage dapo"] and url.startswith(f"{hub.endpoint}/me/tiny-med/commit/")
    assert repo.files == _files(final_dir)
    assert hub.requests["lfs_put"] == 1  # model.safetensors through LFS; config, tokenizer and card inline


def test_an_interrupted_upload_resumes_without_resending_the_weights(hub, final_dir):
    target = HubTarget("dapo", "me/tiny-med", private=False)
    hub.fail_commits = 1
    with pytest.raises(RuntimeError, match="Run the same command again to resume"):
        push_folder(final_dir, target, "first try", hub.endpoint)
    assert hub.repos["me/tiny-med"].files == {} and hub.requests["lfs_put"] == 1
    push_folder(final_dir, target, "second try", hub.endpoint)
    assert hub.requests["lfs_put"] == 1  # the weights went up once
    assert hub.repos["me/tiny-med"].commits == ["second try"] and hub.repos["me/tiny-med"].files == _files(final_dir)


def test_push_to_hub_uploads_finished_stages_of_a_run(hub, final_dir, tmp_path):
    out = tmp_path / "run"
    (out / "dapo").mkdir(parents=True)
    write_completion_marker(out / "dapo", "dapo", "dapo", {}, final_dir=final_dir)
    cfg = _tiny_cfg(out, "hub.push=true", "hub.model_id=me/tiny-med", f"hub.endpoint={hub.endpoint}")
    kinds = {name: cfg.stages[name].kind for name in cfg.stages}
    pushed = push_to_hub(cfg, out, kinds)  # the other training stages have not finished: skipped
    assert list(pushed) == ["dapo"] and hub.repos["me/tiny-med"].commits == ["medreason: stage dapo of run tiny"]
    hub.token = "hf_another_token"  # the environment's token is refused: the error names stage and repository
    with pytest.raises(RuntimeError, match=r"stage 'dapo' .* to me/x failed: .*401"):
        push_folder(final_dir, HubTarget("dapo", "me/x", True), "m", hub.endpoint)
