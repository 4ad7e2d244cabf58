"""Export a trained run to a bundle: two ONNX graphs over the decoding contract, the
sentencepiece model(s) and ``bundle.json`` (format in ``exported/README.md``)."""
