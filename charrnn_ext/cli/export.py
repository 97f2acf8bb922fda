"""``charrnn-export``: a checkpoint's model as a file other tools load (the formats: exporting.py)."""
from __future__ import annotations

from .. import _loading

with _loading():  # Ctrl-C while the heavy modules load: exit quietly with 130
    import argparse
    import sys

    from .. import __version__
    from .common import ArgumentParser, CLIError, prog_name, run
    from ..formats.exporting import format_of, to_bytes


DESCRIPTION = """\
Write a checkpoint's model, with the state training left, as a file other
tools load; the format follows OUT's extension:

  OUT.safetensors  the weights of a PyTorch module (nn.RNN / nn.LSTM / nn.GRU
                   read by nn.Linear; one-hot input or nn.Embedding) and the
                   state: charrnn_ext.formats.torch.load(OUT) returns both
  OUT.onnx         an ONNX graph (ids [batch, time] -> logits, next_state)
                   for onnxruntime and other runtimes

OUT is never the checkpoint, and an existing file is replaced only with
--overwrite (atomically: a reader never sees half a file).
"""

EPILOG = """\
examples:
  charrnn-export input.npz input.safetensors
  charrnn-export input.best.npz model.onnx --overwrite

exit status: 0 done, 1 the file could not be written, 2 bad checkpoint,
path or options.
"""


def build_parser(prog: str | None = None) -> ArgumentParser:
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.export"), description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (charrnn_ext) {__version__}")
    p.add_argument("model", metavar="MODEL.npz",
                   help="a checkpoint written by charrnn-train (or its .best.npz)")
    p.add_argument("out", metavar="OUT", help="the file to write: OUT.safetensors or OUT.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    from ..ckpt.checkpoint import load_checkpoint
    from ..ckpt.outputs import check_new_file, write_file
    check_new_file(args.out, "OUT", {"MODEL": args.model}, args.overwrite)
    try:
        format_of(args.out)
    except ValueError as exc:
        raise CLIError(f"OUT {exc}") from None
    try:
        ckpt = load_checkpoint(args.model)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    try:
        data = to_bytes(ckpt.model, ckpt.vocab.chars, args.out, ckpt.hidden[:, :1])
    except ValueError as exc:
        raise CLIError(f"{args.model}: {exc}") from None
    except ImportError as exc:   # the onnx package (an extra)
        raise CLIError(f"OUT {args.out} needs the {exc.name or 'onnx'} package, which is not "
                       f"installed (pip install 'charrnn_ext[onnx]')") from None
    write_file(args.out, data, "OUT")
    print(f"wrote {args.out}")
    return 0


def main(argv=None) -> int:
    return run(_main, argv, build_parser().prog)


if __name__ == "__main__":
    sys.exit(main())
