"""edgeav.runtime: the device side of edgeav (no TensorFlow, no librosa).

- :mod:`~edgeav.runtime.sources`: the frame-source and audio-source interface, ``Frame``, ``Window``.
- :mod:`~edgeav.runtime.camera`: a live camera or stream, and a video file.
- :mod:`~edgeav.runtime.picamera`: the Raspberry Pi camera module through Picamera2, and the
  choice between it and V4L2 for a camera index.
- :mod:`~edgeav.runtime.audio`: a microphone (sounddevice) and a WAV/FLAC file.
- :mod:`~edgeav.runtime.ringbuffer`: the last few seconds of audio, written by a capture thread.
- :mod:`~edgeav.runtime.interpreter`: one ``.tflite`` model, float in and float out (LiteRT,
  falling back to tflite-runtime, then ``tf.lite``).
- :mod:`~edgeav.runtime.doctor`, :mod:`~edgeav.runtime.device_checks`: the checks behind
  ``edgeav doctor``.
- :mod:`~edgeav.runtime.pipeline`: ``open_pipeline(...)`` and the tick behind ``edgeav run``.

Importing this package imports nothing heavy; OpenCV, sounddevice and soundfile are imported when
a source is opened.
"""
