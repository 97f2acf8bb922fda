"""The numpy reference: Karpathy's min-char-rnn, in Python 3, with the correct BPTT.

This is the oracle every test compares the Cython core against, kept as close
to the original script as possible (one-hot inputs, per-step dicts). It is
not a path to train with: it is slow on purpose, like the original.

Beyond min-char-rnn, the same loops with two options of the batched recipe:
an input embedding (``params["embed"]`` (V, D): x_t = embed[inputs[t]] and
Wxh (H, D)), Adam (``adam_update``, torch.optim.Adam's formula) and RMSprop
(``rmsprop_update``, torch.optim.RMSprop's); their constants are
charrnn_ext.core.optimizers' table.

Differences from the seed listing, all deliberate:
  * BPTT carries ``dhnext = Whh.T @ dhraw`` (the seed's "完整代码" listing
    never updates ``dhraw_next``; its annotated cell is correct);
  * softmax subtracts the maximum logit first (identical in exact arithmetic,
    and does not overflow on large logits);
  * parameters are passed in a dict instead of living in globals;
  * ``sample`` takes a temperature and a numpy Generator.
"""
import numpy as np

from ..defaults import CLIP
from .optimizers import TABLE

ADAGRAD_EPS = TABLE["adagrad"].eps
from .spec import EMBED, PARAM_NAMES, init_params, param_names  # noqa: F401  (init_params re-exported)


def lossFun(inputs, targets, hprev, params):
    """
    inputs, targets are both list of integers.
    hprev is Hx1 array of initial hidden state
    returns the loss, gradients on model parameters (a dict), and last hidden state
    """
    loss, grads, h = raw_lossFun(inputs, targets, hprev, params)
    for dparam in grads.values():
        np.clip(dparam, -CLIP, CLIP, out=dparam)  # clip to mitigate exploding gradients
    return loss, grads, h


def raw_lossFun(inputs, targets, hprev, params):
    """lossFun without the clipping: the loss, the raw gradients, the last hidden state."""
    Wxh, Whh, Why, bh, by = (params[n] for n in PARAM_NAMES)
    embed = params.get(EMBED)      # (V, D), or None: one-hot input
    vocab_size = Why.shape[0]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev).reshape(-1, 1)
    loss = 0
    # forward pass
    for t in range(len(inputs)):
        if embed is None:
            xs[t] = np.zeros((vocab_size, 1))  # encode in 1-of-k representation
            xs[t][inputs[t]] = 1
        else:
            xs[t] = embed[inputs[t]].reshape(-1, 1)  # the input's embedding (D, 1)
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)  # hidden state
        ys[t] = np.dot(Why, hs[t]) + by  # unnormalized log probabilities for next chars
        exp_y = np.exp(ys[t] - np.max(ys[t]))
        ps[t] = exp_y / np.sum(exp_y)  # probabilities for next chars
        loss += -np.log(ps[t][targets[t], 0])  # softmax (cross-entropy loss)
    # backward pass: compute gradients going backwards
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    dembed = None if embed is None else np.zeros_like(embed)
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # backprop into y
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # backprop into h
        dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh nonlinearity
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        if embed is not None:
            dembed[inputs[t]] += np.dot(Wxh.T, dhraw).ravel()  # backprop into the embedding
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    grads = dict(zip(PARAM_NAMES, [dWxh, dWhh, dWhy, dbh, dby]))
    if embed is not None:
        grads[EMBED] = dembed
    return loss, grads, hs[len(inputs) - 1]


def batch_lossFun(inputs, targets, hprev, params):
    """B parallel streams, written as the obvious loop over min-char-rnn's lossFun.

    inputs, targets: B lists of T integers (stream b reads inputs[b]);
    hprev: (H, B) array, column b the hidden state of stream b.
    Returns the mean over streams of each stream's summed chunk loss, the mean
    over streams of the gradients, clipped to [-CLIP, CLIP] after averaging,
    and the last hidden states (H, B). With B = 1 this is lossFun.
    """
    hprev = np.asarray(hprev, dtype=np.float64)
    B = len(inputs)
    hprev = hprev.reshape(-1, B)
    losses, grads, hs = [], [], []
    for b in range(B):
        loss, g, h = raw_lossFun(inputs[b], targets[b], hprev[:, b:b + 1], params)
        losses.append(loss)
        grads.append(g)
        hs.append(h)
    mean = {name: sum(g[name] for g in grads) / B for name in grads[0]}
    for dparam in mean.values():
        np.clip(dparam, -CLIP, CLIP, out=dparam)
    return sum(losses) / B, mean, np.hstack(hs)


def batch_train_step(inputs, targets, hprev, params, memory, learning_rate):
    """batch_lossFun followed by one Adagrad update."""
    loss, grads, h = batch_lossFun(inputs, targets, hprev, params)
    adagrad_update(params, grads, memory, learning_rate)
    return loss, h


def adagrad_update(params, grads, memory, learning_rate):
    """The seed's Adagrad update, in place on params and memory."""
    for name in params:
        param, dparam, mem = params[name], grads[name], memory[name]
        mem += dparam * dparam
        param += -learning_rate * dparam / np.sqrt(mem + ADAGRAD_EPS)  # adagrad update


def adam_update(params, grads, memory, moment, t, learning_rate):
    """torch.optim.Adam's update at step t (1, 2, ...), in place on params,
    moment (first moment) and memory (second moment)."""
    beta1, beta2 = TABLE["adam"].betas
    for name in params:
        param, g, m, v = params[name], grads[name], moment[name], memory[name]
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * (g * g)
        step_size = learning_rate / (1 - beta1 ** t)
        param -= step_size * m / (np.sqrt(v) / np.sqrt(1 - beta2 ** t) + TABLE["adam"].eps)


def rmsprop_update(params, grads, memory, learning_rate):
    """torch.optim.RMSprop's update (no momentum, not centered), in place on
    params and memory (the mean square): memory = alpha * memory + (1 - alpha)
    * g^2; param -= learning_rate * g / (sqrt(memory) + eps)."""
    alpha, eps = TABLE["rmsprop"].alpha, TABLE["rmsprop"].eps
    for name in params:
        param, g, v = params[name], grads[name], memory[name]
        v[...] = alpha * v + (1 - alpha) * (g * g)
        param -= learning_rate * g / (np.sqrt(v) + eps)


def train_step(inputs, targets, hprev, params, memory, learning_rate):
    """lossFun followed by the Adagrad update: one iteration of the seed's loop."""
    loss, grads, h = lossFun(inputs, targets, hprev, params)
    adagrad_update(params, grads, memory, learning_rate)
    return loss, h


def top_filter(y, p, top_k=0, top_p=1.0):
    """The probabilities p (V,) of logits y (V,) with the ids outside the top
    k (top_k > 0) and then outside the top-p nucleus (top_p < 1) set to 0:
    ids ranked by logit, largest first, ties by id; the nucleus is the
    fewest of the top k whose probabilities sum to at least top_p times
    theirs. Not renormalised (the draw divides by the sum)."""
    y, p = np.ravel(y), np.array(p, dtype=np.float64).ravel()
    V = y.size
    if not (0 < top_k < V or top_p < 1.0):
        return p
    order = np.lexsort((np.arange(V), -y))    # by logit descending, then by id
    keep = top_k if 0 < top_k < V else V
    if top_p < 1.0:
        kept = p[order[:keep]]
        cumulative, total = 0.0, 0.0
        for q in kept:
            total += q
        i = 0
        while i < keep:
            cumulative += kept[i]
            i += 1
            if cumulative >= top_p * total:
                break
        keep = i
    p[order[keep:]] = 0.0
    return p


def sample(h, seed_ix, n, params, temperature=1.0, rng=None, top_k=0, top_p=1.0):
    """
    sample a sequence of integers from the model
    h is memory state, seed_ix is seed letter for first time step
    temperature 0 takes the most likely letter; rng is a numpy Generator;
    top_k / top_p keep the likeliest ids only (top_filter)
    """
    Wxh, Whh, Why, bh, by = (params[n_] for n_ in PARAM_NAMES)
    embed = params.get(EMBED)
    vocab_size = Why.shape[0]
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    h = np.copy(h).reshape(-1, 1)

    def encode(ix):  # the input of id ix: 1-of-k, or its embedding
        if embed is not None:
            return embed[ix].reshape(-1, 1)
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        return x

    x = encode(seed_ix)
    ixes = []
    for t in range(n):
        h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
        y = np.dot(Why, h) + by
        if temperature == 0:
            ix = int(np.argmax(y))
        else:
            p = top_filter(y, np.exp((y - np.max(y)) / temperature), top_k, top_p)
            p = p / np.sum(p)
            ix = int(rng.choice(vocab_size, p=p.ravel()))
        x = encode(ix)
        ixes.append(ix)
    return ixes


def trace(inputs, hprev, params):
    """The hidden state after each input and the prediction of the character
    after it, weights frozen: (hs (n, H), ps (n, V)), the forward pass of
    lossFun written out (one-hot inputs, or the embedding's rows), for CharRNN.trace."""
    Wxh, Whh, Why, bh, by = (params[n_] for n_ in PARAM_NAMES)
    embed = params.get(EMBED)      # (V, D), or None: one-hot input
    vocab_size = Why.shape[0]
    h = np.copy(hprev).reshape(-1, 1)
    hs, ps = [], []
    for t in range(len(inputs)):
        if embed is None:
            x = np.zeros((vocab_size, 1))  # encode in 1-of-k representation
            x[inputs[t]] = 1
        else:
            x = embed[inputs[t]].reshape(-1, 1)  # the input's embedding (D, 1)
        h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh.reshape(-1, 1))  # hidden state
        y = np.dot(Why, h) + by.reshape(-1, 1)  # unnormalized log probabilities for next chars
        exp_y = np.exp(y - np.max(y))
        hs.append(h.ravel())
        ps.append((exp_y / np.sum(exp_y)).ravel())  # probabilities for next chars
    return np.array(hs), np.array(ps)
