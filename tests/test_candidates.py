"""An image read as several candidates, the most confident reading kept (edgeav.candidates)."""

from __future__ import annotations

import numpy as np

from edgeav.candidates import first, judged, pick


def test_pick_keeps_each_rows_most_confident_candidate():
    probs = np.array(
        [
            [[0.4, 0.3, 0.3], [0.1, 0.8, 0.1]],  # the second candidate is surer
            [[0.9, 0.05, 0.05], [0.2, 0.2, 0.6]],  # the first is
            [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]],  # a tie: the first
        ]
    )
    np.testing.assert_array_equal(pick(probs), [probs[0, 1], probs[1, 0], probs[2, 0]])


def test_judged_reads_every_candidate_in_one_call_and_4d_inputs_as_they_are():
    calls = []

    def predict(x):
        calls.append(x.shape)
        # confidence grows with the input's mean; the class is its first pixel's sign
        conf = 0.5 + 0.4 * np.tanh(x.reshape(len(x), -1).mean(axis=1))
        cls = (x.reshape(len(x), -1)[:, 0] > 0).astype(int)
        out = np.zeros((len(x), 2))
        out[np.arange(len(x)), cls] = conf
        out[np.arange(len(x)), 1 - cls] = 1 - conf
        return out

    x = np.zeros((3, 2, 4, 4, 1), np.float32)
    x[0, 1] = 1.0  # row 0: the second candidate is the surer one, and says class 1
    x[1, 0] = 0.5  # row 1: the first (its second reads 50:50)
    p = judged(predict, x)
    assert calls == [(6, 4, 4, 1)]
    assert p.shape == (3, 2)
    assert p[0].argmax() == 1 and p[0].max() > 0.8
    assert p[1].argmax() == 1 and p[1].max() < 0.8  # the first candidate's 0.5 mean
    np.testing.assert_array_equal(judged(predict, x[:, 0]), predict(x[:, 0]))
    assert calls[-2:] == [(3, 4, 4, 1), (3, 4, 4, 1)]
    np.testing.assert_array_equal(first(x), x[:, 0])
    np.testing.assert_array_equal(first(x[:, 0]), x[:, 0])
