"""reclab: model families, evaluation and the plain functions the Metaflow flows call.

Heavy libraries (TensorFlow, torch, Spark, NVTabular) are imported inside the modules that need
them, never at package import, so the client side (loading a versioned model) stays light.
"""

from reclab.errors import InputError

__all__ = ["InputError"]
