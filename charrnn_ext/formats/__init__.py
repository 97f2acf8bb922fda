"""A model as files other tools load: safetensors for PyTorch, ONNX, the PyTorch module."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
