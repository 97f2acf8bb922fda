"""``python -m charrnn_ext.export``: the command's public path; the command is charrnn_ext.cli.export (charrnn-export)."""
import sys

from .cli.export import main

if __name__ == "__main__":
    sys.exit(main())
