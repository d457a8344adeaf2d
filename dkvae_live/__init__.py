"""DK·VAE Live: a neural drum machine played live from MIDI and OSC.

This package is the live daemon. It never imports TensorFlow: models arrive as ONNX files that
follow docs/model-contract.md.
"""

__version__ = "0.1.0"
