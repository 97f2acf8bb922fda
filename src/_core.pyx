# charrnn_ext._core, the module: its docstring and imports, and the pieces it includes.
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The core of charrnn_ext: min-char-rnn's training step, forward-only loss
and sampling, over C-contiguous float64 arrays with the GIL released (the
same source compiled over float32 is charrnn_ext._core32: src/_core32.pyx).

Shapes (H = hidden size, V = vocabulary size, T = chunk length, B = streams):
    Wxh (H, V)   Whh (H, H)   Why (V, H)   bh (H,)   by (V,)
The Adagrad memory (m*) and the gradients (d*) have the same shapes.

One compilation unit (each ISA variant of setup.py compiles this file, and
the pieces below are textual includes of it), laid out like llm.c's
train_gpt2.c: nogil kernels on raw pointers first, in forward/backward pairs
named for their layer, each opening with its shapes; the model's
composition; then the checked Python face.

    core/real64.pxi     the compute type: real = double (real32.pxi: float), its gemm
    core/body.pxi       the imports, then the pieces below, in order
    core/shim.pxi       OpenMP and atomic counters (C); f64 (double), i32
    core/knobs.pxi      block sizes, thresholds, the thread count
    core/vmath.pxi      vexp, vtanh
    core/linalg.pxi     reductions, transpose, matvec_t, matmul_rows,
                        matmul_blocked, dgemm
    core/partition.pxi  stripes and pieces (by size), run_pieces
    core/rnn.pxi        rnn_step, rnn_forward / rnn_backward
    core/output.pxi     output_forward / output_backward, output_group
    core/update.pxi     clip, the optimizers (Adagrad, Adam, RMSprop): clip_update
    core/sampling.pxi   output_step, draw_id
    core/trace.pxi      trace_forward (states and predictions over a text)
    core/datapass.pxi   min-char-rnn's data pass (next_chunk)
    core/model.pxi      model_forward / model_backward / model_update, model_train
    core/pipeline.pxi   the pipelined steps over two threads (Sync)
    core/workspace.pxi  TanhWorkspace: min-char-rnn's layer: buffers and entry points
    core/storage.pxi    Storage and the id helpers
    core/lstm.pxi       lstm_forward / lstm_backward (one step, elementwise)
    core/gru.pxi        gru_forward / gru_backward (one step, elementwise)
    core/stack.pxi      the Stack (gated and stacked models): layout, stack_*
    core/layer.pxi      layer_forward / layer_backward (groups of streams, pieces)
    core/gated_workspace.pxi  StackWorkspace: the Stack's buffers and entry points

Invariants the kernels rely on:
  * ids are in [0, V): the Python layer (charrnn_ext.model) validates every
    array it hands down, and bounds checking is off here;
  * the input layer is a column lookup of Wxh, never a one-hot product;
    dWxh is zero outside the columns of the ids of the last chunk;
  * work is cut by size only (partition.pxi) and partial results are
    combined in a fixed order, so results are the same bit for bit with any
    number of threads;
  * B streams are laid out time-major: ids (T, B), hidden states (T+1, B, H),
    so that the states of a chunk are one (T*B, H) matrix for the output layer;
  * the recurrence reads Whh transposed (WhhT), copied from Whh at every
    entry, so that parameters changed in place by the caller are seen.
"""
include "core/real64.pxi"
include "core/body.pxi"
