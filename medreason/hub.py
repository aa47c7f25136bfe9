"""Publish trained models: upload each training stage's ``final/`` to the Hugging Face Hub when a run ends.

A run-wide ``hub`` block (``hub.push=true hub.model_id=USER/NAME``) pushes every training stage: the
last one to ``model_id``, the others to ``<model_id>-<stage>``. A stage's own ``hub`` block
(``stages.dapo.hub.push=true``, ``stages.dapo.hub.model_id=...``) overrides the run's. Each upload is
one commit of the whole folder (weights, tokenizer, model card), made with ``huggingface_hub`` from the
main process; it resumes: blobs an interrupted upload already sent are not sent again, and a rerun
of a finished run uploads only what changed.

The token is read from the environment (``HF_TOKEN``) only, never from a config file, and a run that
would push without one is refused when its config is validated, before anything trains.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from medreason.stage_context import TRAINING_KINDS, read_completion_marker
from medreason.utils.config_errors import ConfigError
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

HUB_KEYS = ("push", "model_id", "private", "endpoint")
"""The keys of the run-wide ``hub`` block; a stage's ``hub`` block may set all but ``endpoint``."""
TOKEN_VARIABLE = "HF_TOKEN"
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


class HubConfigError(ConfigError):
    """A ``hub`` setting that cannot push: the message names the key and the fix."""


@dataclass(frozen=True)
class HubTarget:
    """Where one stage's ``final/`` goes.

    Args:
        stage: The training stage.
        repo_id: ``namespace/name`` on the Hub.
        private: Create the repository as private (an existing one keeps its visibility).
    """

    stage: str
    repo_id: str
    private: bool


def hub_targets(cfg: DictConfig, kinds: dict[str, str]) -> list[HubTarget]:
    """The stages of ``cfg`` to push and where; checks the ``hub`` blocks and that a token is set.

    Args:
        cfg: The run config.
        kinds: Every stage of the recipe, in order, to its kind.

    Raises:
        HubConfigError: an unknown key, a push without a repository id or with a malformed one, or a
            push with no ``HF_TOKEN`` in the environment.

    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"hub": {"push": False}, "stages": {"sft": {"kind": "sft"}}})
    >>> hub_targets(cfg, {"sft": "sft"})
    []
    """
    run_hub = _block(cfg.get("hub"), "hub", HUB_KEYS)
    training = [name for name, kind in kinds.items() if kind in TRAINING_KINDS]
    targets = []
    for name in training:
        stage_hub = _block(cfg.stages[name].get("hub"), f"stages.{name}.hub", HUB_KEYS[:3])
        push = stage_hub.get("push")
        if not (run_hub.get("push") if push is None else push):
            continue
        repo_id = stage_hub.get("model_id")
        if repo_id is None and run_hub.get("model_id"):
            repo_id = run_hub["model_id"] if name == training[-1] else f"{run_hub['model_id']}-{name}"
        if repo_id is None:
            raise HubConfigError(f"stages.{name} is to be pushed to the Hub but has no repository: set "
                                 f"hub.model_id=USER/NAME (or stages.{name}.hub.model_id=USER/NAME).")
        if not _REPO_ID.fullmatch(str(repo_id)):
            raise HubConfigError(f"hub model_id={repo_id!r} of stage {name!r} is not a Hub repository id: use "
                                 "NAMESPACE/NAME (letters, digits, '-', '_', '.').")
        private = stage_hub.get("private")
        targets.append(HubTarget(name, str(repo_id), bool(run_hub.get("private", True) if private is None else private)))
    if targets and not os.environ.get(TOKEN_VARIABLE):
        raise HubConfigError(
            f"hub push is on for {[t.stage for t in targets]} but {TOKEN_VARIABLE} is not set: export "
            f"{TOKEN_VARIABLE}=hf_... (a token with write access) before the run. Tokens are read from the "
            "environment only, never from config files; or set hub.push=false."
        )
    return targets


def _block(block: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    values = dict(block or {})
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise HubConfigError(f"{where} has unknown keys {unknown}; valid keys are {list(keys)}.")
    return values


def push_folder(folder: Path, target: HubTarget, commit_message: str, endpoint: str | None = None) -> str:
    """Create ``target``'s repository if needed and upload ``folder`` as one commit; return the commit URL.

    Raises:
        RuntimeError: the upload failed; the message names the stage and repository, and says that
            running the same command again resumes it.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint, token=os.environ[TOKEN_VARIABLE])
    try:
        api.create_repo(target.repo_id, private=target.private, exist_ok=True)
        commit = api.upload_folder(repo_id=target.repo_id, folder_path=folder, commit_message=commit_message)
    except HfHubHTTPError as error:
        raise RuntimeError(
            f"Uploading stage {target.stage!r} ({folder}) to {target.repo_id} failed: {error}. Run the same command "
            "again to resume: files the Hub already holds are not sent again."
        ) from error
    return commit.commit_url


def push_to_hub(cfg: DictConfig, output_dir: Path, kinds: dict[str, str]) -> dict[str, str]:
    """Push every finished stage :func:`hub_targets` names (main process); return stage -> commit URL."""
    endpoint = (cfg.get("hub") or {}).get("endpoint")
    pushed = {}
    for target in hub_targets(cfg, kinds):
        marker = read_completion_marker(output_dir / target.stage)
        if marker is None:
            logger.warning("Stage %r has not finished; nothing of it is pushed to %s.", target.stage, target.repo_id)
            continue
        message = f"medreason: stage {target.stage} of run {cfg.run_name}"
        pushed[target.stage] = push_folder(Path(marker["final_dir"]), target, message, endpoint)
        logger.info("Pushed stage %r to %s: %s", target.stage, target.repo_id, pushed[target.stage])
    return pushed
