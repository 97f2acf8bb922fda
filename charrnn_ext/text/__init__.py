"""Text: the vocabulary, the demo corpus, reading input files."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
