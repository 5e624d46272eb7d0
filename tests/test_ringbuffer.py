"""The runtime's audio ring buffer: wrapping, oversized writes, PCM and channels, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgeav.errors import EdgeAVError
from edgeav.features import extract
from edgeav.runtime.ringbuffer import RingBuffer


def test_ring_buffer_wraps_and_returns_oldest_first():
    ring = RingBuffer(1.0, 10)  # 10 samples
    assert ring.capacity == 10 and len(ring) == 0 and ring.latest(5).size == 0
    ring.write(np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(10), [0, 1, 2, 3])  # fewer than asked: all there is
    np.testing.assert_array_equal(ring.latest(2), [2, 3])
    ring.write(np.arange(4, 11, dtype=np.float32))  # fills to 11 written: wraps once
    assert ring.total_written == 11 and len(ring) == 10
    np.testing.assert_array_equal(ring.latest(10), np.arange(1, 11))
    np.testing.assert_array_equal(ring.latest(3), [8, 9, 10])
    ring.write(np.arange(11, 14, dtype=np.float32))  # write across the end of the array
    np.testing.assert_array_equal(ring.latest(), np.arange(4, 14))
    np.testing.assert_array_equal(ring.latest(0), [])


def test_ring_buffer_keeps_the_newest_of_an_oversized_write():
    ring = RingBuffer(0.5, 20)  # 10 samples
    ring.write(np.arange(3, dtype=np.float32))
    ring.write(np.arange(100, 125, dtype=np.float32))
    assert ring.total_written == 28
    np.testing.assert_array_equal(ring.latest(10), np.arange(115, 125))
    ring.write(np.array([7.0]))
    np.testing.assert_array_equal(ring.latest(4), [122, 123, 124, 7])
    ring.clear()
    assert ring.total_written == 0 and ring.latest().size == 0


def test_ring_buffer_mixes_channels_scales_pcm_and_checks_requests():
    ring = RingBuffer(1.0, 8)
    ring.write(np.array([[16384, 0], [-32768, -32768]], dtype=np.int16))  # (frames, channels)
    np.testing.assert_array_equal(ring.latest(), np.array([0.25, -1.0], dtype=np.float32))
    assert ring.latest().dtype == np.float32
    out = ring.latest()
    out[:] = 99  # a copy: the buffer is untouched
    np.testing.assert_array_equal(ring.latest(), [0.25, -1.0])
    with pytest.raises(EdgeAVError, match="latest"):
        ring.latest(9)
    with pytest.raises(EdgeAVError, match="sample_rate"):
        RingBuffer(1.0, 0)
    with pytest.raises(EdgeAVError, match="seconds"):
        RingBuffer(0.0, 16000)
    with pytest.raises(EdgeAVError, match="dtype"):
        ring.write(np.zeros(4, dtype=np.int64))


def test_ring_buffer_concurrent_writer_and_reader_see_consistent_windows():
    ring = RingBuffer(0.1, 1000)  # 100 samples
    blocks = 2000
    errors = []

    def writer():
        for i in range(blocks):
            ring.write(np.arange(i * 7, i * 7 + 7, dtype=np.float32))

    def reader():
        while ring.total_written < blocks * 7:
            w = ring.latest(50)
            if w.size > 1 and not np.all(np.diff(w) == 1):
                errors.append(w)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:1]
    np.testing.assert_array_equal(ring.latest(100), np.arange(blocks * 7 - 100, blocks * 7))


def test_ring_buffer_window_feeds_extract():
    rng = np.random.default_rng(4)
    audio = (rng.standard_normal(40000) * 2000).astype(np.int16)
    ring = RingBuffer(2.0, 16000)
    for block in np.array_split(audio, 37):
        ring.write(block)
    window = ring.latest(16000)
    np.testing.assert_array_equal(window, (audio[-16000:] / 32768.0).astype(np.float32))
    np.testing.assert_allclose(extract(window), extract(audio[-16000:]), rtol=1e-4, atol=1e-3)
