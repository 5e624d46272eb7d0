"""Image preprocessing shared by training, conversion and the device runtime.

One :class:`ImageSpec` travels in the training run and in the bundle's manifest, so the camera
frame on the device is prepared exactly as the training images were. NumPy only at import; OpenCV
is imported inside :func:`preprocess_image` when a resize is needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError


@dataclass(frozen=True)
class ImageSpec:
    """How a raw image becomes the image model's input.

    Attributes:
        size: square side of the model input in pixels.
        channels: 1 (grayscale) or 3 (RGB, in the order given by ``color_order``).
        color_order: channel order the model expects when ``channels == 3`` ("rgb" or "bgr").
        crop: "center" crops the largest centred square before resizing; "none" resizes the
            whole frame (aspect ratio not kept); "digit" finds the handwritten digit on paper in
            the frame and lays it out like MNIST, light on black (:mod:`edgeav.locate`; grey
            only; all black when there is none).
        scale, offset: the model input is ``pixel * scale + offset`` (pixels in 0..255).
        invert: map ``p -> 255 - p`` before scaling (dark-on-light paper vs. MNIST's light-on-dark).
    """

    size: int = 32
    channels: int = 3
    color_order: str = "rgb"
    crop: str = "center"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    invert: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise EdgeAVError(f"image size must be an integer >= 8, got {self.size!r}")
        if self.channels not in (1, 3):
            raise EdgeAVError(f"image channels must be 1 or 3, got {self.channels!r}")
        if self.color_order not in ("rgb", "bgr"):
            raise EdgeAVError(f"color_order must be 'rgb' or 'bgr', got {self.color_order!r}")
        if self.crop not in ("center", "none", "digit"):
            raise EdgeAVError(f"crop must be 'center', 'none' or 'digit', got {self.crop!r}")
        if self.crop == "digit" and self.channels != 1:
            raise EdgeAVError("crop 'digit' needs channels 1 (grey)")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ImageSpec:
        if not isinstance(data, dict):
            raise EdgeAVError(f"image spec must be an object, got {type(data).__name__}")
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise EdgeAVError(f"unknown image spec field(s): {', '.join(sorted(unknown))}")
        kwargs = {}
        for name, value in data.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            else:
                ok = isinstance(value, str)
            if not ok:
                raise EdgeAVError(f"image spec field {name!r} has the wrong type: {value!r}")
            kwargs[name] = value
        return cls(**kwargs)


def preprocess_image(
    image: np.ndarray, spec: ImageSpec, *, source_order: str = "bgr"
) -> np.ndarray:
    """Turn one image into the model input, float32 of shape ``spec.shape``.

    For ``crop="digit"`` this is the first of :func:`image_candidates` (the layout of the
    locator's first search), the input the image model is trained on.

    Args:
        image: ``(H, W)`` grayscale or ``(H, W, 3|4)`` colour, uint8 (0..255), uint16 (scaled to
            0..255) or float (taken as 0..1 if its maximum is <= 1, else 0..255).
        spec: the :class:`ImageSpec` of the model.
        source_order: channel order of a colour ``image`` ("bgr" for OpenCV frames and
            ``cv2.imread``, "rgb" otherwise).

    Raises:
        EdgeAVError: for an empty image, an unsupported shape or non-finite values.
    """
    return _prepare(image, spec, source_order, candidates=False)[0]


def candidate_count(spec: ImageSpec) -> int:
    """How many inputs :func:`image_candidates` gives for ``spec``."""
    if spec.crop != "digit":
        return 1
    from edgeav.locate import LEVELS  # noqa: PLC0415

    return len(LEVELS)


def image_candidates(
    image: np.ndarray, spec: ImageSpec, *, source_order: str = "bgr"
) -> np.ndarray:
    """Every input the image model reads for one image, float32 ``(k, *spec.shape)``, ``k``
    :func:`candidate_count`: for ``crop="digit"`` the layout of each of the locator's searches
    (:func:`edgeav.locate.find_digits`; the model's most confident reading is kept,
    :mod:`edgeav.candidates`), otherwise :func:`preprocess_image`'s one input. Same arguments
    and errors as :func:`preprocess_image`."""
    return np.stack(_prepare(image, spec, source_order, candidates=True))


def _prepare(
    image: np.ndarray, spec: ImageSpec, source_order: str, candidates: bool
) -> list[np.ndarray]:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise EdgeAVError(
            f"unsupported image shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise EdgeAVError(f"empty image of shape {arr.shape}")
    if arr.dtype == np.uint8 and spec.crop == "digit":
        # A camera frame: the locator takes it as it is (BGR or grey uint8) and shrinks it first.
        frame = arr[:, :, :3] if arr.ndim == 3 else arr
        if frame.ndim == 3 and source_order == "rgb":
            frame = frame[:, :, ::-1]
        return [_finish(layout, spec) for layout in _digit_layouts(frame, spec, candidates)]
    if arr.dtype == np.uint8:
        # A camera frame: crop and shrink while it is still uint8 (a tenth of the work of doing
        # it in float32 on the full frame); the steps below are then on spec.size pixels.
        arr = _crop_resize(arr[:, :, :3] if arr.ndim == 3 else arr, spec)
        img = arr.astype(np.float32)
    elif arr.dtype == np.uint16:
        img = arr.astype(np.float32) / 257.0
    elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        img = np.clip(arr.astype(np.float32), 0, 255)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):  # before float32, which would turn 1e300 into inf
            raise EdgeAVError("image contains NaN or infinite values")
        unit = arr.size and float(arr.max()) <= 1.0
        img = np.clip(arr, 0.0, 1.0 if unit else 255.0).astype(np.float32)
        if unit:
            img = img * 255.0
    else:
        raise EdgeAVError(f"unsupported image dtype {arr.dtype}")

    if img.ndim == 3:
        img = img[:, :, :3]
        if source_order == "bgr":
            img = img[:, :, ::-1]  # now RGB
        if spec.channels == 1:
            img = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if img.ndim == 2 and spec.channels == 3:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and spec.channels == 3 and spec.color_order == "bgr":
        img = img[:, :, ::-1]

    if spec.crop == "digit":
        frame = np.clip(img, 0, 255).astype(np.uint8)
        return [_finish(layout, spec) for layout in _digit_layouts(frame, spec, candidates)]
    return [_finish(_crop_resize(img, spec), spec)]


def _digit_layouts(frame: np.ndarray, spec: ImageSpec, candidates: bool) -> list[np.ndarray]:
    from edgeav.locate import digit_layout, digit_layouts  # noqa: PLC0415

    if candidates:
        return list(digit_layouts(frame, spec.size))
    return [digit_layout(frame, spec.size)]


def _finish(img: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Channel axis, inversion and ``pixel * scale + offset``: float32 of ``spec.shape``."""
    if img.ndim == 2:
        img = img[:, :, None]
    if spec.invert:
        img = 255.0 - img
    out = img.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    return np.ascontiguousarray(out, dtype=np.float32)


def _crop_resize(img: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """The centre square (``spec.crop == "center"``) resized to ``spec.size``, same dtype."""
    h, w = img.shape[:2]
    if spec.crop == "center" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img = img[top : top + side, left : left + side]
    if img.shape[0] != spec.size or img.shape[1] != spec.size:
        import cv2  # noqa: PLC0415

        shrinking = img.shape[0] > spec.size
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        img = cv2.resize(np.ascontiguousarray(img), (spec.size, spec.size), interpolation=interp)
    return img
