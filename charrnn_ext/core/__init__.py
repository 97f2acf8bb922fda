"""The model: its face over the compiled core, the numpy references, the model's settings table."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
