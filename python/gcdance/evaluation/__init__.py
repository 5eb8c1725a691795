"""Evaluation of generated dances against real ones (``python -m gcdance.evaluation.evaluate``);
the metrics themselves are the public :mod:`gcdance.metrics`."""
