"""edgeav.runtime: the device side of edgeav (no TensorFlow, no librosa).

- :mod:`~edgeav.runtime.interpreter`: one ``.tflite`` model, float in and float out (LiteRT,
  falling back to tflite-runtime, then ``tf.lite``).
- :mod:`~edgeav.runtime.camera`: frames from a camera index, a video file or a stream URL.
- :mod:`~edgeav.runtime.microphone`: audio from a microphone (sounddevice) or a WAV/FLAC file.
- :mod:`~edgeav.runtime.pipeline`: the fused-classification loop behind ``edgeav run``.
- :mod:`~edgeav.runtime.worker`: the thread that runs a tick's image-model invoke beside its
  audio branch.
- :mod:`~edgeav.runtime.affinity`: pins the tick's two threads to two CPUs of their own and keeps
  the helper threads (decoder, readers) off them.

Importing this package imports nothing heavy; OpenCV, sounddevice and soundfile are imported by
the functions that open a source.
"""
