"""Printed training digits from matplotlib's fonts (edgeav.data.printed)."""

from __future__ import annotations

import numpy as np
import pytest

printed = pytest.importorskip("edgeav.data.printed")
pytest.importorskip("PIL")


def test_printed_digits_are_deterministic_laid_out_and_take_the_fonts_in_turn():
    inks, labels, fonts = printed.printed_digits(3, seed=7)
    again, _, _ = printed.printed_digits(3, seed=7)
    other, _, _ = printed.printed_digits(3, seed=8)
    assert inks.shape == (30, 28, 28) and inks.dtype == np.uint8
    assert np.array_equal(inks, again) and not np.array_equal(inks, other)
    assert labels.tolist() == [d for d in range(10) for _ in range(3)]
    stems = [f.stem for f in printed.font_files()]
    assert fonts[:3] == stems[:3]  # the fonts in turn
    for ink in inks:  # MNIST's layout: the box fits 20x20 of 28x28, nothing at the border
        rows = np.flatnonzero(ink.max(axis=1) > 12)
        cols = np.flatnonzero(ink.max(axis=0) > 12)
        assert 14 <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21
        assert not ink[0].any() and not ink[-1].any()


def test_no_printed_digits_when_none_are_asked_for():
    inks, labels, fonts = printed.printed_digits(0, seed=0)
    assert inks.shape == (0, 28, 28) and labels.size == 0 and fonts == []
