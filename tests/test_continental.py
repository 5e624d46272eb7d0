"""Continental forms of MNIST's 1 and 7 (edgeav.data.continental)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeav.data import continental


def _stroke(top: int, bottom: int, col: int) -> np.ndarray:
    """A bare vertical "1" laid out like MNIST: 3 pixels wide."""
    ink = np.zeros((28, 28), np.uint8)
    ink[top:bottom, col - 1 : col + 2] = 255
    return ink


def _width(ink: np.ndarray, rows: slice) -> int:
    cols = np.flatnonzero(ink[rows].max(axis=0) > 127)
    return int(cols[-1] - cols[0] + 1) if len(cols) else 0


def test_a_one_gets_a_flag_to_the_left_of_its_top_and_keeps_the_mnist_layout():
    ink = _stroke(4, 24, 14)
    for seed in range(5):
        out = continental.continental_form(ink, 1, np.random.default_rng(seed))
        assert out.shape == (28, 28) and out.dtype == np.uint8
        rows = np.flatnonzero(out.max(axis=1) > 127)
        top = slice(rows[0], rows[0] + 6)
        # the flag widens the top of the digit, leftwards of the stem
        assert _width(out, top) >= 6, seed
        left = np.flatnonzero(out[top].max(axis=0) > 127)[0]
        stem = np.flatnonzero(out[rows[-1] - 4] > 127)  # above a foot
        assert left < stem[0], seed
        assert not out[0].any() and not out[-1].any()  # MNIST's border stays empty


def test_a_seven_gets_a_bar_across_its_stem():
    ink = np.zeros((28, 28), np.uint8)
    ink[4:7, 8:21] = 255  # the top bar
    for r in range(7, 24):  # the stem, down to the left
        c = 19 - (r - 7) // 3
        ink[r, c - 1 : c + 2] = 255
    out = continental.continental_form(ink, 7, np.random.default_rng(0))
    rows = np.flatnonzero(out.max(axis=1) > 127)
    h = rows[-1] - rows[0]
    middle = slice(rows[0] + int(0.45 * h), rows[0] + int(0.7 * h) + 1)
    stem_width = _width(ink, slice(12, 20))
    assert _width(out, middle) >= stem_width + 3


@pytest.mark.parametrize("digit", [0, 2, 3, 4, 5, 6, 8, 9])
def test_other_digits_and_empty_inks_are_left_as_they_are(digit):
    ink = _stroke(4, 24, 14)
    rng = np.random.default_rng(0)
    assert continental.continental_form(ink, digit, rng) is ink
    empty = np.zeros((28, 28), np.uint8)
    assert continental.continental_form(empty, 1, rng) is empty


def test_the_same_generator_state_gives_the_same_form():
    ink = _stroke(4, 24, 14)
    a = continental.continental_form(ink, 1, np.random.default_rng(3))
    b = continental.continental_form(ink, 1, np.random.default_rng(3))
    assert np.array_equal(a, b)
