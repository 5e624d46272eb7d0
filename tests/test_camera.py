"""Frame sources: a video file on its own clock, and a live camera that reopens after an outage.

Real parts: videos written with cv2.VideoWriter; the "device" is a real cv2.VideoCapture of such
a video (conftest's ``LoopingCapture``) whose reads fail on demand.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from media import write_video

from edgeav.errors import EdgeAVError
from edgeav.runtime.camera import LiveCamera, VideoFile, open_frame_source


def us(seconds: float) -> int:
    return int(round(seconds * 1e6))


def test_video_file_gives_the_frame_on_screen_just_before_t(tmp_path):
    video = write_video(tmp_path / "v.mkv", [10 * i for i in range(25)])  # 2.5 s at 10 fps
    cam = VideoFile(video).open()
    assert cam.frame_at(0) is None  # nothing on screen before the first frame
    f = cam.frame_at(us(0.05))
    assert (f.index, f.t, f.received) == (0, 0.0, None)
    assert cam.frame_at(us(0.1)).index == 0  # frame 1 starts exactly at 0.1: not yet
    f = cam.frame_at(us(0.100001))
    assert (f.index, f.t, int(f.image[0, 0, 0])) == (1, 0.1, 10)
    f = cam.frame_at(us(1.0))
    assert (f.index, int(f.image[0, 0, 0])) == (9, 90)
    assert cam.frames_dropped == 7  # frames 2..8 were never handed out
    assert cam.frame_at(us(2.5)).index == 24  # the last frame is on screen until 2.5 s
    assert not cam.ended
    assert cam.frame_at(us(2.6)) is None and cam.ended
    assert cam.stats()["frames_read"] == 25
    cam.close()


def test_video_file_loops_with_continuous_time(tmp_path):
    video = write_video(tmp_path / "v.mkv", [0, 50, 100, 150, 200])  # 0.5 s
    cam = VideoFile(video, loop=True).open()
    f = cam.frame_at(us(0.55))
    assert (f.index, f.t, int(f.image[0, 0, 0])) == (5, 0.5, 0)
    f = cam.frame_at(us(1.25))
    assert (f.index, f.t, int(f.image[0, 0, 0])) == (12, 1.2, 100)
    assert not cam.ended and cam.loops == 2
    cam.close()


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(EdgeAVError, match=r"video file .*missing\.mp4 does not exist"):
        open_frame_source(str(tmp_path / "missing.mp4")).open()
    bad = tmp_path / "not a video.mp4"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(EdgeAVError, match="cannot read video .*not a video"):
        open_frame_source(str(bad)).open()
    if not Path("/dev/video7").exists():
        with pytest.raises(EdgeAVError, match="camera index 7 cannot be opened"):
            open_frame_source("7").open()
    with pytest.raises(EdgeAVError, match="camera index must be >= 0"):
        open_frame_source(-1)
    with pytest.raises(EdgeAVError, match="camera source is empty"):
        open_frame_source(" ")


def test_camera_values_choose_the_source():
    assert isinstance(open_frame_source(0), LiveCamera)
    assert open_frame_source("2").label == "camera 2"
    assert open_frame_source("rtsp://cam.local/stream").label == "stream rtsp://cam.local/stream"
    assert isinstance(open_frame_source("clip.mp4"), VideoFile)


def flaky_capture(looping_capture, video: Path, down: float, up: float):
    """A looping capture at 40 fps that delivers nothing while ``down <= monotonic() < up``: a
    camera that stops (unplugged, driver hang) and comes back; the outage is on the wall clock,
    so it lasts across the camera's reopen attempts."""

    def off() -> bool:
        return down <= time.monotonic() < up

    return looping_capture(
        video, 40, fault=lambda: "false" if off() else None, online=lambda: not off()
    )


def test_live_camera_keeps_the_newest_frame_and_reopens_after_an_outage(tmp_path, looping_capture):
    video = write_video(tmp_path / "v.mkv", [10 * i for i in range(20)])
    now = time.monotonic()
    messages = []
    cam = LiveCamera(
        0,
        opener=lambda src: flaky_capture(looping_capture, video, now + 0.3, now + 1.2),
        backoff_start=0.1,
        backoff_max=0.4,
        log=messages.append,
    ).open()
    try:
        time.sleep(0.25)
        before = cam.frame_at(0)
        assert before is not None and before.received is not None
        assert cam.frame_at(0) is before  # nothing newer yet... or the newest, never older
        time.sleep(0.3)  # in the outage
        stuck = cam.frame_at(0)
        time.sleep(0.3)
        assert cam.state == "reopening"
        assert cam.frame_at(0) is stuck  # nothing new: the pipeline will call it stale
        time.sleep(1.2)  # the camera is back
        after = cam.frame_at(0)
        assert after.index > before.index and cam.state == "open"
        assert cam.reopens >= 2 and cam.read_failures >= 3
        assert cam.frames_dropped > 0  # a tick takes only the newest
        assert any("reopening" in m for m in messages) and any("again" in m for m in messages)
    finally:
        cam.close()
    assert cam.state == "closed"
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeav-")]
