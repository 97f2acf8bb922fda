"""``python -m charrnn_ext.train``: the command's public path; the command is charrnn_ext.cli.train (charrnn-train)."""
import sys

from .cli.train import main

if __name__ == "__main__":
    sys.exit(main())
