"""Command line: ``python -m medreason.synth +pipeline=NAME key=value ...`` (Hydra).

    python -m medreason.synth +pipeline=finemed input=texts.jsonl backend=openai \\
        base_url=http://host:8000/v1 model=Qwen/Qwen2.5-72B-Instruct output=out/
    python -m medreason.synth +pipeline=reasonmed input=questions.jsonl model=NAME output=out/
    python -m medreason.synth +pipeline=ii_medical_traces input=questions.jsonl model=NAME output=out/

The config root is ``conf/synth/``: ``synth.yaml`` plus its ``pipeline`` group (``conf/synth/pipeline/``).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from medreason.synth.run import plan_pipeline, run_pipeline, synth_config_dir
from medreason.utils.cli import reported_user_errors
from medreason.utils.logging import configure_logging
from medreason.utils.run_files import run_lock


@reported_user_errors("medreason.synth")
def _run(cfg: DictConfig) -> None:
    configure_logging()
    plan = plan_pipeline(cfg)
    with run_lock(plan.output):
        run_pipeline(plan)


def main() -> None:
    """Entry point: hand over to Hydra with the config root ``conf/synth``."""
    hydra.main(config_path=str(synth_config_dir()), config_name="synth", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
