"""The mean over equal windows that bounds a sequence's length (pipeline/windows.py)."""

from __future__ import annotations

import torch

from mmpipe.pipeline.windows import window_bounds, window_mean


def test_windows_tile_the_valid_steps_in_near_equal_parts():
    assert window_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert window_bounds(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert window_bounds(2, 3) == [(0, 1), (1, 2)]  # shorter than the bound: kept as is
    for length in range(1, 40):
        for bound in range(1, 12):
            windows = window_bounds(length, bound)
            sizes = [stop - start for start, stop in windows]
            assert windows[0][0] == 0 and windows[-1][1] == length and min(sizes) >= 1
            assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
            assert max(sizes) - min(sizes) <= 1 and len(windows) == min(length, bound)


def test_a_known_case_and_padding_never_enters():
    sequence = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0], [99.0]],  # 5 valid steps, then padding
                             [[1.0], [3.0], [float("nan")], [0.0], [0.0], [0.0]]])  # 2 valid, NaN padding
    out, steps = window_mean(sequence, torch.tensor([5, 2]), max_steps=2)
    assert steps.tolist() == [2, 2]
    assert out[0, :, 0].tolist() == [1.5, 4.0]  # windows [0, 2) and [2, 5)
    assert out[1, :, 0].tolist() == [1.0, 3.0]


def test_without_a_bound_or_under_it_the_sequence_is_unchanged_and_padding_zeroed():
    sequence = torch.randn(3, 5, 4)
    steps = torch.tensor([5, 3, 0])
    for bound in (None, 5, 9):
        out, new = window_mean(sequence, steps, bound)
        assert torch.equal(new, steps) and out.shape == (3, 5, 4)
        assert torch.equal(out[0], sequence[0]) and torch.equal(out[1, :3], sequence[1, :3])
        assert not out[1, 3:].any() and not out[2].any()


def test_each_row_is_windowed_alone():
    sequence, steps = torch.randn(4, 9, 3), torch.tensor([9, 4, 7, 1])
    together, _ = window_mean(sequence, steps, 3)
    for row in range(4):
        alone, _ = window_mean(sequence[row:row + 1], steps[row:row + 1], 3)
        assert torch.equal(together[row], alone[0])
