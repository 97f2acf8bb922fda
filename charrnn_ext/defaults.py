"""Hyperparameter defaults: the one place they are defined (the seed's values)."""

HIDDEN_SIZE = 100       # size of the hidden layer
SEQ_LENGTH = 25         # steps to unroll the RNN for
BATCH_SIZE = 1          # parallel streams per step (1: exactly min-char-rnn)
LEARNING_RATE = 0.1     # Adagrad learning rate
LR_DECAY = 1.0          # the learning rate at the end of a run, as a fraction of it (1: constant)
LR_WINDOW = 100         # iterations between changes of a decaying learning rate
SAMPLE_EVERY = 100      # print a sample every this many iterations
SAMPLE_LENGTH = 200     # characters per printed sample
TEMPERATURE = 1.0       # sampling temperature of printed samples
ITERS = 10_000          # total iterations to reach
VAL_FRACTION = 0.05     # fraction of the text held out (its end) for validation
SEED = 0                # random seed of initialisation and sampling
INIT_SCALE = 0.01       # weights are randn * INIT_SCALE, biases zero
CLIP = 5.0              # gradients are clipped elementwise to [-CLIP, CLIP]
OPTIMIZER = "adagrad"   # the update (the seed's); each optimizer's constants: charrnn_ext.core.optimizers
EMBEDDING_SIZE = 0      # width of a learned input embedding; 0: the seed's one-hot input
DTYPE = "float64"       # what a model computes in: float64 (the reference) or float32
INIT = "min-char-rnn"   # initial weights: the seed's ("min-char-rnn") or "pytorch" (charrnn_ext.core.spec)

# -- the training and sampling tools (python -m charrnn_ext.train / .sample) --
EVAL_EVERY = 2000       # evaluate (held-out and training bits/char) every this many iterations
EVAL_TRAIN_CHARS = 10_000  # the training figure: the last this many training characters (charrnn_ext.evaluate)
VAL_MAX_CHARS = 100_000 # the held-out figure: at most this many held-out characters (a prefix)
CHECKPOINT_EVERY = 1000 # write the --checkpoint file every this many iterations
ENCODING = "utf-8"      # text encoding of the input file
BLAS_THREADS = 1        # threads of the BLAS the core calls (see charrnn_ext.set_blas_threads)
NUM_THREADS = 0         # threads of the core's output layer; 0: one per usable CPU (set_num_threads)
CALL_SECONDS = 0.1      # a call into the core trains about this long: Ctrl-C, progress and stop() are seen between calls
MAX_THREADS = 1024      # larger thread counts (API, CLI, environment) are capped to this
