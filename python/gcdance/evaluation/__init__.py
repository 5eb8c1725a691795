"""Evaluation of generated dances against real ones (``python -m gcdance.evaluation.evaluate``)
and the paper's whole protocol, test set and generation included
(``python -m gcdance.evaluation.protocol``); the metrics themselves are the public
:mod:`gcdance.metrics`."""
