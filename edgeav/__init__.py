"""edgeav: fused audio+image classification from laptop to Raspberry Pi.

Nothing in this package imports TensorFlow, tf_keras or librosa at import time; the heavy
imports happen inside the functions that need them.
"""

__version__ = "0.1.0"
