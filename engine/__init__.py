"""Cataract Grader engine: data, models, training and inference. Never imports Qt."""

__version__ = "0.1.0"
