"""Run a recipe's stages in order: ``python -m medreason.train +recipe=NAME [overrides]``.

    python -m medreason.train +recipe=tiny                           # CPU demo, a few minutes
    python -m medreason.train +recipe=finemedlm_o1 dry_run=true      # print the resolved config
    python -m medreason.train +recipe=tiny stage=sft_endocrinology resume=true
    accelerate launch --config_file $(python -m medreason.config accelerate/zero3_8gpu.yaml) \\
        -m medreason.train +recipe=ii_medical_8b stage=sft stages.sft.data.path=/data/sft.jsonl

Each stage writes ``<output_dir>/<stage>/`` (checkpoints, ``metrics.json``, ``final/``) and a
completion marker last; the next stage starts from ``final/``. The resolved config is saved as
``<output_dir>/config.yaml``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import hydra
from accelerate import PartialState
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from medreason.config import config_dir
from medreason.hub import push_to_hub
from medreason.model_card import write_model_cards
from medreason.recipe import (
    STAGE_KINDS,
    RecipeError,
    UnsetValuesError,
    selected_stages,
    stage_names,
    validate_run_config,
)
from medreason.run_report import write_report
from medreason.run_summary import render_summary, write_summary
from medreason.stage_context import FAILED_NOTE, StageContext, finished_stage, read_completion_marker
from medreason.utils.cli import force_add_overrides, reported_user_errors
from medreason.utils.launch import (
    accelerate_distributed_type,
    forget_previous_stage_state,
    launch_state,
    rank_local_model_loading,
)
from medreason.utils.logging import configure_logging, get_logger, logging_to_file
from medreason.utils.run_files import check_inside, redact_secrets, run_lock

logger = get_logger(__name__)


def run(cfg: DictConfig) -> dict[str, Path]:
    """Validate ``cfg`` and train its selected stages; return each trained stage's final directory."""
    configure_logging(cfg.log_level)
    if cfg.dry_run:
        try:
            validate_run_config(cfg)
            unset = []
        except UnsetValuesError as error:
            unset = error.keys
        _print_plan(cfg)
        for key in unset:
            print(f"# to set: {key}=...")  # noqa: T201
        count = f"{len(unset)} value{'s' if len(unset) > 1 else ''} to set"
        print(f"# {count}: the config is valid otherwise" if unset else "# config is valid")  # noqa: T201
        return {}
    configs = validate_run_config(cfg, check_hardware=True)
    state = launch_state()  # distributed also on the CPU launches, whatever stages the run selects
    output_dir = Path(cfg.output_dir)
    names = stage_names(cfg)
    kinds = {name: cfg.stages[name].kind for name in names}
    markers = {name: read_completion_marker(output_dir / name) for name in selected_stages(cfg)}
    if all(markers.values()) and not cfg.overwrite:
        logger.info("Every stage of this run already finished in %s; overwrite=true trains them again.", output_dir)
        if state.is_main_process:
            push_to_hub(cfg, output_dir, kinds)  # resumes an upload an earlier run did not finish
            print(render_summary(output_dir, kinds))  # noqa: T201 - the run's result, for the terminal
        return {name: Path(marker["final_dir"]) for name, marker in markers.items()}
    if not state.is_main_process:
        return _run_stages(cfg, configs, output_dir, state, kinds)
    with run_lock(output_dir), logging_to_file(output_dir / "train.log"):
        saved = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
        if HydraConfig.initialized():
            overrides = redact_secrets(list(HydraConfig.get().overrides.task))
            (output_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
        return _run_stages(cfg, configs, output_dir, state, kinds)


def _run_stages(
    cfg: DictConfig, configs: dict, output_dir: Path, state: PartialState, kinds: dict[str, str]
) -> dict[str, Path]:
    """Train the selected stages in order into ``output_dir`` (whose lock the main process holds);
    ``kinds`` maps every stage of the recipe, in order, to its kind."""
    names = list(kinds)
    model_path = _base_model_path(cfg, output_dir, state)

    finals: dict[str, Path] = {}
    starts: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for name in selected_stages(cfg):
        stage = cfg.stages[name]
        stage_dir = output_dir / name
        start = stage.get("init_from") or _previous_final(cfg, names, name, output_dir) or model_path
        starts[name] = str(start)
        marker = finished_stage(stage_dir, name, bool(cfg.resume), bool(cfg.overwrite))
        if marker is not None:
            logger.info("Stage %r already finished; skipping (resume=true)", name)
            finals[name] = Path(marker["final_dir"])
            continue
        if state.is_main_process:
            if cfg.overwrite and stage_dir.exists():
                check_inside(stage_dir, output_dir)
                shutil.rmtree(stage_dir)
            (stage_dir / FAILED_NOTE).unlink(missing_ok=True)
        state.wait_for_everyone()
        forget_previous_stage_state()
        context = StageContext(
            name=name, kind=stage.kind, cfg=stage, model_path=str(start),
            reference_path=str(stage.get("reference_from") or start),
            output_dir=stage_dir, resume=bool(cfg.resume), seed=cfg.seed, run_cfg=cfg, config=configs[name],
        )
        logger.info("Stage %r (%s) starting from %s", name, stage.kind, start)
        started = time.perf_counter()
        finals[name] = STAGE_KINDS[stage.kind].run(context)
        seconds[name] = round(time.perf_counter() - started, 2)
        logger.info("Stage %r done in %.1f s (accelerate: %s): %s", name, seconds[name], accelerate_distributed_type(),
                    finals[name])
    if state.is_main_process:
        write_summary(output_dir, names, starts, seconds)
        write_model_cards(cfg, output_dir, kinds, configs)  # after the eval stages: the cards carry their results
        write_report(output_dir, cfg.run_name, kinds)
        push_to_hub(cfg, output_dir, kinds)  # last: the cards it uploads carry the eval results
        print(render_summary(output_dir, kinds))  # noqa: T201 - the run's result, for the terminal
    return finals


def _previous_final(cfg: DictConfig, names: list[str], name: str, output_dir: Path) -> Path | None:
    """The model the stage before ``name`` handed on (its marker's ``final_dir``); ``None`` for the first.

    A stage that trains writes its own ``final/``; one that only measures (evaluation) hands on
    the model it was given, so the stage after it starts from that.

    Raises:
        RecipeError: the previous stage has not finished, so this stage has nothing to start from.
    """
    index = names.index(name)
    if index == 0:
        return None
    previous = names[index - 1]
    marker = read_completion_marker(output_dir / previous)
    if marker is not None:
        return Path(marker["final_dir"])
    if cfg.stage is not None:
        raise RecipeError(
            f"stage={name} starts from stage {previous!r}, which has not finished in {output_dir / previous}. "
            f"Run stage={previous} first, or start from a model: ++stages.{name}.init_from=PATH_OR_HUB_ID"
        )
    return output_dir / previous / "final"


def _base_model_path(cfg: DictConfig, output_dir: Path, state: PartialState) -> str:
    """The model the first stage starts from; builds the tiny random model when ``model.tiny_family`` is set."""
    if cfg.model.tiny_family is None:
        return cfg.model.name_or_path
    from medreason.testing import build_tiny_model_dir

    path = output_dir / "base_model"
    with state.main_process_first():
        if state.is_main_process and not (path / "config.json").is_file():
            with rank_local_model_loading():  # the main process alone builds it, also under ZeRO-3
                build_tiny_model_dir(path, cfg.model.tiny_family, seed=cfg.seed)
    return str(path)


def _print_plan(cfg: DictConfig) -> None:
    """Print the resolved config and the stages that would run (``dry_run=true``)."""
    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except (MissingMandatoryValue, InterpolationToMissingValueError):  # a ??? the user must still set; show it unresolved
        text = OmegaConf.to_yaml(cfg, resolve=False)
    print(text)  # noqa: T201 - the dry run's output is the config
    stages = " -> ".join(f"{name} ({cfg.stages[name].kind})" for name in selected_stages(cfg))
    print(f"# stages to run: {stages}")  # noqa: T201
    if cfg.launch.accelerate_config:
        print(  # noqa: T201
            f"# the model card ran on {cfg.launch.num_processes} GPUs: accelerate launch --config_file "
            f"$(python -m medreason.config accelerate/{cfg.launch.accelerate_config}.yaml) -m medreason.train ..."
        )


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
@reported_user_errors("medreason.train")
def _main(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    """``python -m medreason.train`` / ``medreason-train``: Hydra with the run-wide ``trainer.*`` and
    ``stages.*`` overrides added rather than refused, so that validation names a typo with close matches."""
    sys.argv = force_add_overrides(sys.argv, ("trainer", "stages"))
    _main()


if __name__ == "__main__":
    main()
