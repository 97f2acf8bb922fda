"""``charrnn_ext.torch.load``: the PyTorch module of an exported model, by its public path (the loader is charrnn_ext.formats.torch)."""
from .formats.torch import load  # noqa: F401
