"""Musical-instrument classification: a reproducible DVC pipeline with kapre + Keras."""

__version__ = "0.1.0"
