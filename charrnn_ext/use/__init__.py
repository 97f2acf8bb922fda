"""After training: generating text (sampling, top-k/top-p, beam search, stop strings) and scoring it (also with dynamic evaluation)."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
