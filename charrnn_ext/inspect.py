"""``python -m charrnn_ext.inspect``: the command's public path; the command is charrnn_ext.cli.inspect (charrnn-inspect)."""
import sys

from .cli.inspect import main

if __name__ == "__main__":
    sys.exit(main())
