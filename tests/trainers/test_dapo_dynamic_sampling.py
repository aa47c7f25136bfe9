"""Dynamic sampling: which groups are kept, when the batch is full, and the error when it never is."""

import math

import pytest
import torch

from medreason.trainers.dynamic_sampling import (
    DynamicSamplingError,
    GroupFilter,
    PromptStream,
    nonconstant_groups,
)


def test_nonconstant_groups_by_hand():
    values = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.5001])
    assert nonconstant_groups(values, 3).tolist() == [False, False, True, True]


def test_nonconstant_groups_ignore_skipped():
    nan = math.nan
    values = torch.tensor([1.0, nan, 1.0, 0.0, nan, 1.0, nan, nan, 1.0])
    # {1, 1}: constant; {0, 1}: varies; a lone scored value cannot vary
    assert nonconstant_groups(values, 3).tolist() == [False, True, False]


def test_filter_collects_across_generation_batches_and_truncates():
    groups = GroupFilter(target_groups=3, max_num_gen_batches=5)
    groups.add(["a", "b", "c", "d"], torch.tensor([True, False, False, False]))
    assert not groups.full
    groups.add(["e", "f", "g", "h"], torch.tensor([False, True, True, True]))
    assert groups.full
    assert groups.pop_batch() == ["a", "f", "g"]  # "h" was kept but is not needed: discarded
    assert (groups.stats.generation_batches, groups.stats.generated_groups, groups.stats.kept_groups) == (2, 8, 4)
    assert groups.stats.kept_group_ratio == pytest.approx(0.5)
    groups.reset_stats()
    assert groups.stats.generation_batches == 0 and not groups.full


def test_filter_raises_a_clear_error_after_max_num_gen_batches():
    groups = GroupFilter(target_groups=2, max_num_gen_batches=3)
    groups.add(["a", "b"], torch.tensor([False, False]))
    groups.add(["c", "d"], torch.tensor([True, False]))
    with pytest.raises(DynamicSamplingError, match="max_num_gen_batches=3"):
        groups.add(["e", "f"], torch.tensor([False, False]))


def test_filter_without_limit_keeps_going():
    groups = GroupFilter(target_groups=1, max_num_gen_batches=None)
    for _ in range(50):
        groups.add(["x"], torch.tensor([False]))
    assert not groups.full


def test_disabled_filter_keeps_constant_groups():
    groups = GroupFilter(target_groups=2, enabled=False)
    groups.add(["a", "b"], torch.tensor([False, False]))
    assert groups.pop_batch() == ["a", "b"]
    assert groups.stats.kept_group_ratio == 1.0


def test_filter_rejects_bad_settings():
    with pytest.raises(ValueError):
        GroupFilter(target_groups=0)
    for limit in (0, -1):  # 0 once meant "no limit": only None does
        with pytest.raises(ValueError, match="None = no limit"):
            GroupFilter(target_groups=1, max_num_gen_batches=limit)
    with pytest.raises(RuntimeError, match="pop_batch"):
        GroupFilter(target_groups=1).pop_batch()


def test_prompt_stream_crosses_epochs_and_resumes():
    stream = PromptStream(size=4, seed=3)
    first = stream.take(6)
    assert sorted(first[:4]) == [0, 1, 2, 3] and stream.state_dict() == {"epoch": 1, "position": 2}
    rest = stream.take(2)
    assert sorted(first[4:] + rest) == [0, 1, 2, 3]  # epoch 2 is a full permutation too

    resumed = PromptStream(size=4, seed=3)
    resumed.load_state_dict({"epoch": 1, "position": 2})
    assert resumed.take(2) == rest and resumed.epochs_done == 2.0
