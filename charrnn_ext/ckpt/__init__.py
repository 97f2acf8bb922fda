"""Checkpoints and the rules every file a run or command writes follows."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
