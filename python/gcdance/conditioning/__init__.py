"""Conditioning: audio loading and music features (``features/``), the genre registry, and the
text side of genre control (tokenizers, sentence encoders, classifier P), without PyTorch."""
