"""Camera scenes (edgeav.data.scenes): real frames, checked for what a camera would show."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeav.data import mnist, scenes

W, H = scenes.SCENE_SIZE


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist.load_mnist_5k()
    return images[::50], labels[::50]  # 100 digits, 10 of each


def _grey(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)


def _inside(quad: np.ndarray, shape: tuple[int, int], shrink: float = 0.0) -> np.ndarray:
    """Pixels inside a (4, 2) quad, optionally shrunk towards its centre by ``shrink``."""
    import cv2

    centre = quad.mean(axis=0)
    pts = centre + (quad - centre) * (1.0 - shrink)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(pts).astype(np.int32), 1)
    return mask.astype(bool)


def _ink_contrast(scene: scenes.Scene) -> float:
    """Mean grey level of the paper in the digit's box (away from the ink) minus that of the ink."""
    import cv2

    grey = _grey(scene.image)
    near = cv2.dilate((scene.ink > 0.05).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    paper = _inside(scene.digit, grey.shape) & ~near
    ink = scene.ink > 0.6 * scene.ink.max()
    assert paper.sum() > 100 and ink.sum() > 50
    return float(grey[paper].mean() - grey[ink].mean())


def test_frame_shape_jpeg_and_determinism(digits):
    images, _ = digits
    a = scenes.compose_scene(images[3], np.random.default_rng(7))
    b = scenes.compose_scene(images[3], np.random.default_rng(7))
    c = scenes.compose_scene(images[3], np.random.default_rng(8))
    assert a.image.shape == (H, W, 3) and a.image.dtype == np.uint8
    assert a.jpeg[:2] == b"\xff\xd8" and a.jpeg == b.jpeg
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.sheet, b.sheet)
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 10
    import cv2

    decoded = cv2.imdecode(np.frombuffer(a.jpeg, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, a.image)  # the frame is the camera's JPEG
    assert a.ink.shape == (H, W) and a.ink.dtype == np.float32
    small = scenes.render_scene(images[3], np.random.default_rng(7), size=(160, 120))
    assert small.shape == (120, 160, 3)  # rendered at any size
    empty = scenes.render_empty(np.random.default_rng(7))
    assert empty.shape == (H, W, 3) and empty.dtype == np.uint8


def test_the_digit_is_dark_ink_on_lighter_paper_and_in_view(digits):
    images, _ = digits
    contrasts = []
    for i, ink in enumerate(images[::3]):
        scene = scenes.compose_scene(ink, np.random.default_rng(100 + i))
        # the whole digit box in the frame, and all the ink inside it
        assert (scene.digit >= 0).all() and (scene.digit <= [W, H]).all()
        box = _inside(scene.digit, (H, W), shrink=-0.05)
        assert scene.ink[~box].max(initial=0) < 0.05
        contrasts.append(_ink_contrast(scene))
    assert min(contrasts) > 20, contrasts
    assert np.median(contrasts) > 60


def test_sheet_size_and_place_vary_within_bounds(digits):
    images, _ = digits
    heights, outside = [], 0
    for i, ink in enumerate(images[:60]):
        scene = scenes.compose_scene(ink, np.random.default_rng(200 + i))
        tl, tr, br, bl = scene.sheet
        height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2 / H
        heights.append(height)
        jitter = 2 * scenes.CORNER_JITTER  # two corners each move by up to this much of a side
        assert (
            scenes.SHEET_HEIGHT[0] * (1 - jitter) <= height <= scenes.SHEET_HEIGHT[1] * (1 + jitter)
        )
        outside += bool((scene.sheet < 0).any() or (scene.sheet > [W, H]).any())
        # the digit fills most of the sheet's height
        digit_h = (np.linalg.norm(scene.digit[3] - scene.digit[0]) + 0.0) / H
        assert digit_h > 0.3 * height
    assert min(heights) < 0.45 and max(heights) > 0.75  # about a third to most of the frame
    assert 0 < outside < 60  # some sheets run out of the frame, never all


def test_degraded_is_the_same_scene_made_harder(digits):
    images, _ = digits
    clean, hard = [], []
    for i, ink in enumerate(images[1::5]):
        a = scenes.compose_scene(ink, np.random.default_rng(300 + i))
        b = scenes.compose_scene(ink, np.random.default_rng(300 + i), degraded=True)
        np.testing.assert_array_equal(a.sheet, b.sheet)  # same sheet, same pose
        np.testing.assert_array_equal(a.digit, b.digit)
        assert _grey(b.image).mean() < _grey(a.image).mean()  # low light
        clean.append(_ink_contrast(a))
        hard.append(_ink_contrast(b))
    assert np.median(hard) < 0.6 * np.median(clean)


def test_empty_frames_have_nothing_to_read(digits):
    images, _ = digits
    with_sheet = 0
    for i in range(40):
        scene = scenes.compose_scene(None, np.random.default_rng(400 + i))
        assert scene.digit is None and scene.ink is None
        with_sheet += scene.sheet is not None
    assert 0.1 * 40 <= with_sheet <= 0.5 * 40  # EMPTY_SHEET_FRACTION of them show a blank sheet

    def dark_share(scene: scenes.Scene) -> float:
        """Share of the sheet's middle darker by more than 40 grey levels than the lightest
        paper within 7 pixels (strokes are dark lines on light paper; light varies slowly)."""
        import cv2

        grey = _grey(scene.image)
        middle = _inside(scene.sheet, grey.shape, shrink=0.35)
        paper = cv2.dilate(grey, np.ones((15, 15), np.uint8))
        return float((grey < paper - 40)[middle].mean())

    for i in range(10):
        blank = scenes.compose_scene(None, np.random.default_rng(500 + i), sheet=True)
        written = scenes.compose_scene(images[i * 10], np.random.default_rng(500 + i))
        assert dark_share(blank) < 0.01 < 0.03 < dark_share(written)


def test_backgrounds_are_package_files_read_without_network():
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import numpy as np\n"
        "from edgeav.data import handwriting, scenes\n"
        "photos = scenes.backgrounds()\n"
        "handwriting.unseen_digits(2, 0)\n"
        "scenes.compose_scene(None, np.random.default_rng(0))\n"
        "print(len(photos), [p.shape[2] for p in photos].count(3), sorted(\n"
        "    m for m in ('sklearn', 'skimage', 'pooch') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    n, colour, imported = proc.stdout.strip().split(" ", 2)
    assert n == colour and int(n) >= 2 and imported == "[]"  # files read, packages not imported
    names = [s["name"] for s in scenes.background_sources()]
    assert names[:2] == ["china", "flower"]  # scikit-learn's, always
    if importlib_util_has("skimage"):
        assert {"astronaut", "coffee", "chelsea", "rocket"} <= set(names)
    for source in scenes.background_sources():
        assert source["licence"] and source["package"]


def importlib_util_has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
