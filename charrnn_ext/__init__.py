"""charrnn_ext: Karpathy's min-char-rnn with a fast, exact Cython core."""
from .model import PARAM_NAMES, CharRNN
from .vocab import Vocab

__version__ = "0.1.0"
__all__ = ["CharRNN", "Vocab", "PARAM_NAMES", "__version__"]
