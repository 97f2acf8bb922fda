"""A training run: its loop, schedule, fine-tuning, memory check; a sweep's grid and results."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
