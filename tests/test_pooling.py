"""Pooling of (N, T, D) end-padded sequences against hand-computed cases."""

import pytest
import torch

from mmpipe.adapters.pooling import pool, valid_rows

# Two rows, T = 3, D = 2; row 0 has 2 valid steps, row 1 all 3. The padded step of row 0 holds
# junk on purpose: pooling must ignore it.
VALUES = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]],
                       [[0.0, 1.0], [2.0, 1.0], [4.0, -5.0]]])
LENGTHS = torch.tensor([2, 3])


def test_mean_over_valid_steps():
    # row 0: ((1 + 3) / 2, (2 + 6) / 2) = (2, 4); row 1: ((0 + 2 + 4) / 3, (1 + 1 - 5) / 3) = (2, -1)
    assert pool(VALUES, LENGTHS, "mean").tolist() == [[2.0, 4.0], [2.0, -1.0]]


def test_last_valid_step():
    assert pool(VALUES, LENGTHS, "last").tolist() == [[3.0, 6.0], [4.0, -5.0]]


def test_length_one_is_the_first_step_for_both():
    lengths = torch.tensor([1, 1])
    assert pool(VALUES, lengths, "mean").tolist() == [[1.0, 2.0], [0.0, 1.0]]
    assert pool(VALUES, lengths, "last").tolist() == [[1.0, 2.0], [0.0, 1.0]]


def test_keeps_dtype_and_accepts_int32_lengths():
    out = pool(VALUES.half(), LENGTHS.int(), "mean")
    assert out.dtype == torch.float16 and out.tolist() == [[2.0, 4.0], [2.0, -1.0]]


def test_rows_without_steps_are_refused_and_can_be_masked_first():
    values = torch.cat([VALUES, torch.zeros(2, 3, 2)])  # (4, 3, 2); rows 2 and 3 are empty
    lengths = torch.tensor([2, 3, 0, 0])
    for how in ("mean", "last"):
        with pytest.raises(ValueError, match="2 of 4 rows have length 0"):
            pool(values, lengths, how)
    keep = valid_rows(lengths)
    assert keep.tolist() == [True, True, False, False]
    assert pool(values[keep], lengths[keep], "mean").tolist() == [[2.0, 4.0], [2.0, -1.0]]
    # the no-copy variant: the empty rows' zero padding pools to zero, and the mask says they are missing
    assert pool(values, lengths.clamp_min(1), "mean")[2:].abs().sum() == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="lengths must lie in 1..3"):
        pool(VALUES, torch.tensor([2, 4]), "mean")
    with pytest.raises(ValueError, match="lengths must lie in 1..3"):
        pool(VALUES, torch.tensor([-1, 2]), "last")
    with pytest.raises(ValueError, match="must be integers"):
        pool(VALUES, LENGTHS.float(), "mean")
    with pytest.raises(ValueError, match="shape"):
        pool(VALUES, torch.tensor([1, 2, 3]), "mean")
    with pytest.raises(ValueError, match=r"values must be \(N, T, D\)"):
        pool(VALUES[0], LENGTHS, "mean")
    with pytest.raises(ValueError, match="how must be one of"):
        pool(VALUES, LENGTHS, "max")
