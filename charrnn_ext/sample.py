"""``python -m charrnn_ext.sample``: the command's public path; the command is charrnn_ext.cli.sample (charrnn-sample)."""
import sys

from .cli.sample import main

if __name__ == "__main__":
    sys.exit(main())
