"""Export trained DK·VAE models to ONNX files that follow docs/model-contract.md.

Installed as the package ``dkvae_export``; needs the ``[train]`` extra (TensorFlow, tf2onnx).
"""
