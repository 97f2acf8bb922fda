"""``python -m charrnn_ext.sweep``: the command's public path; the command is charrnn_ext.cli.sweep (charrnn-sweep)."""
import sys

from .cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
