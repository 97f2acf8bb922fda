"""The commands (charrnn-train, -sample, -score, -sweep, -export, -inspect): flags, one-line errors, exit statuses."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
