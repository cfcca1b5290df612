"""The model behind the inference lake: data, features, labels, training, evaluation, packaging
and local serving.

Feature code lives once, in ``features.py``: training imports it, the package ships it byte for
byte beside ``inference.py``, and the served model refuses to load next to any other feature code,
so serving can never compute features differently from training.
"""
