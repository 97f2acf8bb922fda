"""``python -m charrnn_ext``: list the commands."""
import sys

from . import __version__

USAGE = f"""\
charrnn_ext {__version__}: Karpathy's min-char-rnn, a character-level RNN, on a fast Cython core.

commands:
  python -m charrnn_ext.train [input.txt]   train a model (charrnn-train); without a file,
                                            on a built-in demo corpus
  python -m charrnn_ext.sample MODEL.npz    generate text from a trained model (charrnn-sample)
  python -m charrnn_ext.score MODEL.npz FILE...
                                            bits per character of texts under a model, also
                                            with dynamic evaluation (charrnn-score)
  python -m charrnn_ext.inspect MODEL.npz [TEXT] --out PAGE.html
                                            a web page of what the model computes over a text:
                                            its hidden units, guesses and surprise (charrnn-inspect)
  python -m charrnn_ext.export MODEL.npz OUT.safetensors|OUT.onnx
                                            the model and the state training left, for
                                            PyTorch (charrnn_ext.formats.torch.load) or as an ONNX
                                            graph (charrnn-export)
  python -m charrnn_ext.sweep input.txt --grid hidden_size=100,200 ...
                                            many training runs at once on Dask (charrnn-sweep;
                                            pip install 'charrnn_ext[sweep]')

Each command explains itself with --help and tells its version with --version.
"""


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--version", "-V"):
        print(f"charrnn_ext {__version__}")
        return 0
    print(USAGE, end="")
    return 0 if not argv or argv[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
