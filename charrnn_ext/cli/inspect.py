"""``charrnn-inspect``: the command over charrnn_ext.page.inspection (a trained model's units, guesses and surprise over a text, as one web page)."""
from __future__ import annotations

from .. import _loading

with _loading():  # Ctrl-C while the heavy modules load: exit quietly with 130
    import argparse
    import math
    import os
    import sys

    from .. import __version__
    from .common import ArgumentParser, CLIError, positive_int, prog_name, run
    from ..page.live import LIVE_BYTES, weight_bytes
    from ..ckpt.checkpoint import load_checkpoint
    from ..text.inputs import decode_input, read_input
    from ..page.inspection import (DEFAULT_LENGTH, PAGE_BYTES, PAGE_CHARACTERS, find_training_text,
                                   page_bytes_per_character, page_limit, to_html, trace)
    from ..ckpt.outputs import check_new_file, write_file


# -- the command -----------------------------------------------------------------

DESCRIPTION = """\
Write one web page showing what a model saved by charrnn-train computes over
a text: each character shaded by the activation of a hidden unit (pick the
unit; arrow keys or j / k step through them), on hover the model's top-5
guesses for the next character and the character's surprise in bits, the
units that follow quotes, brackets, the position in the line or whitespace
most closely, and the model's summary. The page is one file with everything
in it (no network): open it in any browser.

The page also carries the model and runs it: type into its text box and
watch the model's guesses for the next character, the surprise of each
typed character and the chosen unit, live; "Continue" samples characters
after the typed text (temperature, seed, top-k). A model whose weights
pass 16 MB would make the page slow to open: the page is then static
(the text above only), as with --static.

The model reads TEXT from the hidden state training left (as charrnn-sample
reads a --prime). Without TEXT it reads the held-out part of its training
text, continuing the data pass as its validation figure does, when the
training text can be found: the demo corpus, or a file named after the
checkpoint (input.txt for input.npz or input.best.npz) beside it or in the
current directory. --from-zero starts from a zero state instead.
"""

EPILOG = """\
examples:
  charrnn-inspect demo.npz --out demo.html
  charrnn-inspect input.best.npz chapter1.txt --out chapter1.html --length 20000

exit status: 0 done, 1 the page could not be written, 2 bad checkpoint, text
or options.
"""


def build_parser(prog: str | None = None) -> ArgumentParser:
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.inspect"), description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (charrnn_ext) {__version__}")
    p.add_argument("checkpoint", metavar="MODEL.npz",
                   help="a checkpoint written by charrnn-train (or its .best.npz)")
    p.add_argument("text", metavar="TEXT", nargs="?",
                   help="a text file to read (default: the held-out part of the training text)")
    p.add_argument("--out", required=True, metavar="PAGE.html", help="the page to write")
    p.add_argument("--overwrite", action="store_true",
                   help="replace PAGE.html if it exists (a web page only, never another file)")
    p.add_argument("--length", type=positive_int, default=DEFAULT_LENGTH, metavar="N",
                   help=f"characters to show, at most (default: {DEFAULT_LENGTH:,}); a page "
                        f"holds at most {PAGE_CHARACTERS:,}, fewer for a large model (about "
                        f"{PAGE_BYTES >> 20} MB), so that it opens quickly")
    p.add_argument("--static", action="store_true",
                   help="leave the model out: the text above only, no text box nor sampling "
                        f"(always so when the weights pass {LIVE_BYTES >> 20} MB)")
    p.add_argument("--from-zero", action="store_true",
                   help="start from a zero hidden state, not from the state training left")
    p.add_argument("--encoding", default="utf-8", help="of TEXT (default: utf-8)")
    return p


def _check_replaceable(path: str) -> None:
    """--out may replace a page, never another kind of file (a checkpoint
    named by mistake, a text)."""
    if not os.path.exists(path):
        return
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise CLIError(f"--out {path}: cannot read it ({exc.strerror or exc})") from None
    if head and not head.lstrip().lower().startswith(b"<!doctype html"):
        raise CLIError(f"--out {path} exists and is not a web page: refusing to replace it")


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    check_new_file(args.out, "--out", {"the checkpoint": args.checkpoint, "TEXT": args.text},
                   args.overwrite)
    _check_replaceable(args.out)
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    training_text = None
    if args.text is not None:
        data, name = read_input(args.text, args.encoding)
        text = decode_input(data, name, args.encoding)
    else:
        text = None
        found = find_training_text(args.checkpoint, ckpt)
        if found is None:
            raise CLIError(f"no TEXT given, and the text {args.checkpoint} was trained on is not "
                           f"beside it nor the demo corpus; name a text file to read")
        training_text = found[0]
    limit = page_limit(ckpt.model)
    try:   # at most one character past the limit: enough to know the page would be over it
        inspection = trace(ckpt, text, length=min(args.length, limit + 1),
                           from_zero=args.from_zero, training_text=training_text,
                           name=os.path.basename(args.checkpoint),
                           text_name=os.path.basename(args.text or ""))
    except ValueError as exc:
        raise CLIError(f"{args.text or args.checkpoint}: {exc}") from None
    if len(inspection.text) > limit:
        mb = limit * page_bytes_per_character(ckpt.model) / 1e6
        raise CLIError(f"--length {args.length:,}: a page shows at most {limit:,} characters "
                       f"of this model (~{mb:.0f} MB), more would open slowly in a browser; "
                       f"use --length {limit:,} or less")
    live = not args.static
    if live and weight_bytes(ckpt.model) > LIVE_BYTES:
        live = False
        print(f"{args.checkpoint}: its weights ({weight_bytes(ckpt.model) / 1e6:.0f} MB) would "
              f"make the page slow to open (over {LIVE_BYTES >> 20} MB): writing the static page "
              f"(no text box)")
    write_file(args.out, to_html(inspection, live=live).encode("utf-8"), "--out")
    mean = inspection.mean_surprise
    n = len(inspection.text)
    print(f"{args.out}: {n:,} character{'s' if n != 1 else ''}, " + (
        f"mean surprise {mean:.4f} bits/char" if math.isfinite(mean) else "none predicted"))
    return 0


def main(argv=None) -> int:
    return run(_main, argv, build_parser().prog)


if __name__ == "__main__":
    sys.exit(main())
