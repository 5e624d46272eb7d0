"""Digits from other hands (edgeav.data.handwriting): sources, layout, determinism, and that none
is an MNIST digit."""

from __future__ import annotations

import numpy as np

from edgeav.data import handwriting, mnist


def test_unseen_digits_sources_layout_and_determinism():
    inks, labels, sources = handwriting.unseen_digits(10, seed=3)
    assert inks.shape == (100, 28, 28) and inks.dtype == np.uint8
    assert labels.tolist() == [d for d in range(10) for _ in range(10)]
    for d in range(10):
        mine = [s for s, lab in zip(sources, labels, strict=True) if lab == d]
        assert (
            mine.count(handwriting.SOURCE_HERSHEY) == 3 and mine.count(handwriting.SOURCE_UCI) == 7
        )
    # laid out like MNIST: light strokes on dark, in a 20x20 box, centre of mass in the middle
    assert (inks.max(axis=(1, 2)) > 200).all()
    rows, cols = np.arange(28)[:, None], np.arange(28)[None, :]
    for ink in inks:
        for axis in (0, 1):
            drawn = np.flatnonzero(ink.max(axis=axis) > 0)
            assert drawn[-1] - drawn[0] < 21  # the box scaled to fit 20x20
        mass = ink.astype(float) / ink.sum()
        assert abs((mass * rows).sum() - 13.5) < 1.5 and abs((mass * cols).sum() - 13.5) < 1.5
    again = handwriting.unseen_digits(10, seed=3)
    np.testing.assert_array_equal(again[0], inks)
    other = handwriting.unseen_digits(10, seed=4)[0]
    assert sum(np.array_equal(a, b) for a, b in zip(inks, other, strict=True)) < 20


def test_unseen_digits_are_not_mnist_digits():
    pixels, uci_labels = handwriting.load_optdigits()
    assert pixels.shape == (1797, 8, 8) and pixels.max() == 16
    assert np.bincount(uci_labels).min() >= 170  # enough for test-unseen at any --per-class
    images, _ = mnist.load_mnist_5k()
    inks, _, _ = handwriting.unseen_digits(40, seed=0)
    flat = images.reshape(len(images), -1)
    for ink in inks:
        assert not (flat == ink.reshape(1, -1)).all(axis=1).any()
    # and no MNIST digit, reduced the way optdigits were made (32x32 bitmap, 4x4 block counts),
    # is one of the UCI digits
    import cv2

    uci = {p.tobytes() for p in pixels}
    for img in images[::5]:
        bits = cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR) > 127
        blocks = bits.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.uint8)
        assert blocks.tobytes() not in uci
