"""charrnn_ext: Karpathy's min-char-rnn with a fast, exact Cython core."""
from ._dispatch import get_num_threads, set_blas_threads, set_num_threads
from .checkpoint import load_checkpoint
from .model import CharRNN
from .spec import PARAM_NAMES
from .vocab import Vocab

__version__ = "0.1.0"
__all__ = ["CharRNN", "Vocab", "PARAM_NAMES", "load_checkpoint", "set_blas_threads",
           "set_num_threads", "get_num_threads", "__version__"]
