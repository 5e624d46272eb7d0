"""Fuzzing: the bundle reader, the audio features and the image preprocessing.

Each takes whatever hypothesis throws at it and either returns a well-formed result or raises the
one expected error type (:class:`~edgeav.errors.EdgeAVError` or its subclass) -- never another
exception. Bounded (``max_examples``) so the whole file takes well under a minute.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeav.errors import EdgeAVError

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    database=None,
)


# --- the bundle reader --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_bytes(tiny_bundle) -> bytes:
    return Path(tiny_bundle).read_bytes()


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="edgeav-fuzz-") as d:
        yield Path(d)


def _read(data: bytes, scratch: Path):
    """``read_bundle`` on ``data`` written to a file: a Bundle, or None for a BundleError."""
    from edgeav.bundle import BundleError, read_bundle

    path = scratch / "fuzzed.edgeav"
    path.write_bytes(data)
    try:
        bundle = read_bundle(path)
    except BundleError as exc:
        message = str(exc)
        assert message and "\n" not in message and str(path) in message, message
        return None
    # a bundle that reads must be usable
    assert bundle.classes and bundle.modalities
    for m in bundle.modalities:
        assert bundle.model_bytes(m)
    return bundle


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**9), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 10**9), st.integers(1, 64)),
    st.tuples(st.just("overwrite"), st.integers(0, 10**9), st.binary(min_size=1, max_size=16)),
)


def _apply(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in ops:
        if not buf:
            break
        i = pos % len(buf)
        if kind == "flip":
            buf[i] ^= arg
        elif kind == "truncate":
            del buf[i:]
        elif kind == "insert":
            buf[i:i] = arg
        elif kind == "delete":
            del buf[i : i + arg]
        else:
            buf[i : i + len(arg)] = arg
    return bytes(buf)


@FUZZ
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_bundle_bytes_read_or_raise_bundle_error(ops, bundle_bytes, scratch):
    _read(_apply(bundle_bytes, ops), scratch)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_raise_bundle_error(data, scratch):
    assert _read(data, scratch) is None


@FUZZ
@given(
    prefix=st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"PK\x01\x02", b""]),
    data=st.binary(max_size=512),
)
def test_zip_looking_bytes_raise_bundle_error(prefix, data, scratch):
    assert _read(prefix + data, scratch) is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(obj, prefix=()):
    """Every key path in a JSON document (dict keys and list indices)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@pytest.fixture(scope="module")
def bundle_parts(bundle_bytes):
    with zipfile.ZipFile(io.BytesIO(bundle_bytes)) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    manifest = json.loads(entries.pop("manifest.json"))
    return manifest, entries, sorted(_paths(manifest))


def _zip(manifest_bytes: bytes, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", manifest_bytes)
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@FUZZ
@given(data=st.data())
def test_mutated_manifest_values_read_or_raise_bundle_error(data, bundle_parts, scratch):
    manifest, members, paths = bundle_parts
    doc = json.loads(json.dumps(manifest))
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        path = data.draw(st.sampled_from(paths[1:]), label="path")
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = data.draw(st.sampled_from(["set", "delete"]), label="action")
            if action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = data.draw(json_values, label="value")
        except (KeyError, IndexError, TypeError):  # an earlier change removed the path
            continue
    _read(_zip(json.dumps(doc).encode(), members), scratch)


@FUZZ
@given(
    member=st.sampled_from(["image.tflite", "audio.tflite"]),
    ops=st.lists(mutation, min_size=1, max_size=3),
)
def test_mutated_models_with_matching_hashes_read_or_raise_bundle_error(
    member, ops, bundle_parts, scratch
):
    """The sha256 is fixed up, so the model itself (its flatbuffer) is what gets checked."""
    manifest, members, _ = bundle_parts
    mutated = _apply(members[member], ops)
    doc = json.loads(json.dumps(manifest))
    doc["members"][member] = hashlib.sha256(mutated).hexdigest()
    bundle = _read(_zip(json.dumps(doc).encode(), {**members, member: mutated}), scratch)
    if bundle is not None:  # read: then the runtime can load and run the model, or says why
        from edgeav.runtime.interpreter import load_interpreter

        modality = member.split(".")[0]
        try:
            model = load_interpreter(bundle.model_bytes(modality))
        except EdgeAVError:
            return
        x = np.zeros(model.input_shape[1:], np.float32)
        try:
            probs = model.predict(x)
        except EdgeAVError:
            return
        assert probs.shape[-1] == len(bundle.classes)


# --- audio features -----------------------------------------------------------------------------

AUDIO_DTYPES = [np.int8, np.int16, np.int32, np.uint8, np.float16, np.float32, np.float64]


@st.composite
def audio_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(AUDIO_DTYPES)))
    if dtype.kind == "f":
        info = np.finfo(dtype)
        elements = st.floats(
            float(info.min),
            float(info.max),
            allow_nan=False,
            allow_infinity=False,
            width=8 * dtype.itemsize,
        )
    else:
        elements = st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    seed = draw(hnp.arrays(dtype, st.integers(1, 64), elements=elements))
    ndim = draw(st.sampled_from([1, 2]))
    n = draw(st.sampled_from([0, 1, 100, 2047, 2048, 4000, 16000, 23000]))
    if ndim == 1:
        shape = (n,)
    else:
        ch = draw(st.integers(0, 8))
        shape = draw(st.sampled_from([(n, ch), (ch, n)]))
    return np.resize(seed, shape)


@settings(FUZZ, max_examples=150)
@given(y=audio_arrays(), sr=st.sampled_from([None, 16000, 8000, 44100, 96000, 0, -5, 1]))
def test_features_of_any_finite_array_or_feature_error(y, sr):
    from edgeav.features import FeatureConfig, FeatureError, extract

    config = FeatureConfig()
    try:
        out = extract(y, config, sr=sr)
    except FeatureError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert out.shape == (config.dim,) and out.dtype == np.float32
    assert np.isfinite(out).all()


# --- image preprocessing ------------------------------------------------------------------------

IMAGE_DTYPES = [
    np.uint8,
    np.uint16,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint32,
    np.bool_,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
]


@st.composite
def images(draw):
    dtype = np.dtype(draw(st.sampled_from(IMAGE_DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40))
    if dtype.kind == "f":
        # NaN and inf included: they must be refused, not turned into garbage input
        elements = st.floats(width=8 * dtype.itemsize)
    elif dtype.kind == "c":
        elements = st.complex_numbers(max_magnitude=1e3, width=64)
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        elements = st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def specs(draw):
    from edgeav.preprocess import ImageSpec

    return ImageSpec(
        size=draw(st.sampled_from([8, 16, 32, 33])),
        channels=draw(st.sampled_from([1, 3])),
        color_order=draw(st.sampled_from(["rgb", "bgr"])),
        crop=draw(st.sampled_from(["center", "none"])),
        invert=draw(st.booleans()),
    )


@settings(FUZZ, max_examples=200)
@given(img=images(), spec=specs(), order=st.sampled_from(["bgr", "rgb"]))
def test_preprocess_any_array_or_edgeav_error(img, spec, order):
    from edgeav.preprocess import preprocess_image

    try:
        x = preprocess_image(img, spec, source_order=order)
    except EdgeAVError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert x.shape == spec.shape and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert -1e-4 <= x.min() and x.max() <= 1.0 + 1e-4  # the default scale maps 0..255 to 0..1


def test_float64_image_beyond_float32_is_clipped_not_called_infinite():
    from edgeav.preprocess import ImageSpec, preprocess_image

    spec = ImageSpec(size=8, channels=3)
    x = preprocess_image(np.full((16, 16, 3), 1e300), spec)  # no warning, no "infinite"
    assert x.dtype == np.float32 and float(x.min()) == float(x.max()) == 1.0
