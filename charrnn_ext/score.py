"""``python -m charrnn_ext.score``: the command's public path; the command is charrnn_ext.cli.score (charrnn-score)."""
import sys

from .cli.score import main

if __name__ == "__main__":
    sys.exit(main())
