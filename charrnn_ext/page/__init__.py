"""charrnn-inspect's web page: what a model computes over a text (inspection), the HTML, its script and style, the model it runs."""
from .. import _submodule_getattr

__getattr__ = _submodule_getattr(__name__)   # a submodule on first use
