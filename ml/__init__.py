"""The model behind the inference lake: features, labels, training, packaging and local serving.

Feature code lives once, in ``features.py``; training uses it and the package ships it, so serving
can never compute features differently from training.
"""
