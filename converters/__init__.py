"""edgeav.converters: Keras -> pruned/quantised TFLite, checked in LiteRT, bundled.

- :mod:`edgeav.converters.prune`: tfmot magnitude pruning (and 2:4), measured sparsity.
- :mod:`edgeav.converters.quantize`: float32, float16, dynamic-range and int8 conversion.
- :mod:`edgeav.converters.validate`: LiteRT vs Keras on the test split, drop limit.
- :mod:`edgeav.converters.convert`: the ``edgeav convert`` pipeline that writes the bundle.
"""
