"""``charrnn-score``: the command over charrnn_ext.use.scoring (bits per character of files, static or dynamic)."""
from __future__ import annotations

from .. import _loading

with _loading():  # Ctrl-C while the heavy modules load: exit quietly with 130
    import argparse
    import json
    import math
    import sys

    from .. import __version__
    from .common import (ArgumentParser, CLIError, count, positive_float, positive_int, prog_name,
                         run, tolerant_stdout)
    from ..ckpt.checkpoint import load_checkpoint
    from ..core.divergence import TrainingDiverged
    from ..text.inputs import decode_input, read_input
    from ..use.scoring import DYNAMIC_CHUNK, Dynamic, TextScore, known_ids, resolved, score_text, total

# -- the command ---------------------------------------------------------------

DESCRIPTION = """\
Print how well a model saved by charrnn-train predicts each FILE: its bits
per character, the mean surprise -log2 p(character | the characters before
it) over every character but the first (N characters give N - 1
predictions), and of all the files together.

Each file is read from the state training left (stream 0), as charrnn-sample
reads a --prime; --from-zero reads from a zero state instead (then the figure
is the model's own loss over the file's characters, in bits per character).

--dynamic scores with dynamic evaluation (Krause et al. 2018): the text is
read in chunks of --dynamic-chunk characters, each scored first, then learnt
from (one training step of a copy of the model at --dynamic-lr, with the
optimizer state training left), so that later characters are predicted by
weights adapted to the text read so far. The checkpoint is never changed.

A character outside the model's vocabulary is an error that names it;
--skip-unknown leaves such characters out (the text is read as if they were
not there) and reports how many were skipped.
"""

EPILOG = f"""\
examples:
  charrnn-score input.npz held-out.txt
  charrnn-score input.npz a.txt b.txt --json
  charrnn-score input.npz chapter.txt --per-line
  charrnn-score input.npz chapter.txt --dynamic --dynamic-lr 1e-4 --dynamic-chunk 50

--json prints one JSON object per file, a line each: file, characters (read),
predictions, bits (summed surprise), bits_per_char (null without
predictions), start ("training state" or "zero"), skipped, dynamic (null, or
its learning_rate and chunk), and with --per-line lines (line, predictions,
bits_per_char); for several files, then one object for all of them together
(file null, files: their number).

exit status: 0 done, 1 dynamic evaluation diverged or the output could not be
written, 2 bad checkpoint, file or options, 130 interrupted (Ctrl-C).
"""


def build_parser(prog: str | None = None) -> ArgumentParser:
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.score"), description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (charrnn_ext) {__version__}")
    p.add_argument("checkpoint", metavar="MODEL",
                   help="a checkpoint written by charrnn-train (or its .best.npz)")
    p.add_argument("files", nargs="+", metavar="FILE", help="texts to score ('-': standard input)")
    p.add_argument("--from-zero", action="store_true",
                   help="read each file from a zero state, not from the state training left")
    p.add_argument("--json", action="store_true", help="one JSON object per file (see below)")
    p.add_argument("--per-line", action="store_true",
                   help="also the figure of each line (its characters and its newline)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="leave out characters outside the model's vocabulary instead of refusing")
    p.add_argument("--encoding", default="utf-8", metavar="NAME",
                   help="text encoding of the files (default: utf-8)")
    d = p.add_argument_group("dynamic evaluation")
    d.add_argument("--dynamic", action="store_true",
                   help="learn from the text as it is read (see above)")
    d.add_argument("--dynamic-lr", type=positive_float, metavar="LR",
                   help="learning rate of dynamic evaluation's steps (default: a third of the "
                        "rate the model's training ended at, its --learning-rate times "
                        "--lr-decay: 1e-4 for README's GRU command)")
    d.add_argument("--dynamic-chunk", type=positive_int, default=DYNAMIC_CHUNK, metavar="N",
                   help=f"characters scored before each step (default: {DYNAMIC_CHUNK})")
    return p


def _fmt(bpc) -> str:
    return "-" if bpc is None else f"{bpc:.4f}"


def _record(name, s: TextScore) -> dict:
    out = {"file": name, "characters": s.characters, "predictions": s.predictions,
           "bits": s.bits, "bits_per_char": s.bits_per_char,
           "start": "zero" if s.from_zero else "training state", "skipped": s.skipped,
           "dynamic": None if s.dynamic is None else {"learning_rate": s.dynamic.learning_rate,
                                                     "chunk": s.dynamic.chunk}}
    if s.lines is not None:
        out["lines"] = [{"line": ln.line, "predictions": ln.predictions,
                         "bits_per_char": ln.bits_per_char} for ln in s.lines]
    return out


def _lines_of(name, s: TextScore) -> list[str]:
    skipped = f", {count(s.skipped, 'unknown character')} skipped" if s.skipped else ""
    out = [f"{name}: {_fmt(s.bits_per_char)} bits/char ({count(s.characters, 'character')}, "
           f"{s.predictions:,} predicted{skipped})"]
    for ln in s.lines or ():
        out.append(f"{name}:{ln.line}: {_fmt(ln.bits_per_char)} bits/char "
                   f"({count(ln.predictions, 'prediction')})")
    return out


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    tolerant_stdout()
    if args.per_line and args.dynamic:
        raise CLIError("--per-line cannot be combined with --dynamic (its chunks cross lines)")
    if args.files.count("-") > 1:
        raise CLIError("standard input ('-') can be read once")
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    texts = []
    for path in args.files:   # every file read and checked before any is scored
        data, name = read_input(path, args.encoding)
        text = decode_input(data, name, args.encoding)
        try:
            known_ids(ckpt.vocab, text, args.skip_unknown)
        except ValueError as exc:
            raise CLIError(f"{name}: {exc} of {args.checkpoint} (--skip-unknown leaves them "
                           f"out)") from None
        texts.append((name, text))
    dynamic = resolved(Dynamic(args.dynamic_lr, args.dynamic_chunk), ckpt) if args.dynamic \
        else None
    if sys.stdout is None:
        raise CLIError("standard output is closed", code=1)
    from threadpoolctl import threadpool_limits
    scores = []
    try:
        with threadpool_limits(limits=1, user_api="blas"):   # the same figures on every run
            for name, text in texts:
                try:
                    s = score_text(ckpt, text, from_zero=args.from_zero,
                                   skip_unknown=args.skip_unknown, per_line=args.per_line,
                                   dynamic=dynamic)
                except TrainingDiverged:
                    raise CLIError(f"{name}: dynamic evaluation diverged; try a lower "
                                   f"--dynamic-lr (e.g. {dynamic.learning_rate / 10:g})",
                                   code=1) from None
                scores.append(s)
                if dynamic is not None and (s.bits_per_char or 0.0) > math.log2(len(ckpt.vocab)):
                    print(f"{build_parser().prog}: warning: {name}: dynamic evaluation scores "
                          f"worse than a uniform guess ({math.log2(len(ckpt.vocab)):.4f} "
                          f"bits/char): --dynamic-lr {dynamic.learning_rate:g} is probably too "
                          f"large",
                          file=sys.stderr)
                rows = [json.dumps(_record(name, s))] if args.json else _lines_of(name, s)
                print("\n".join(rows), flush=True)
            if len(texts) > 1:
                n, bits = total(scores)
                bpc = bits / n if n else None
                if args.json:
                    print(json.dumps({"file": None, "files": len(texts), "predictions": n,
                                      "bits": bits, "bits_per_char": bpc}), flush=True)
                else:
                    print(f"all {len(texts)} files: {_fmt(bpc)} bits/char ({n:,} predicted)",
                          flush=True)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CLIError(f"cannot write the output: {exc.strerror or exc}", code=1) from None
    return 0


def main(argv=None) -> int:
    return run(_main, argv, build_parser().prog)


if __name__ == "__main__":
    sys.exit(main())
