"""The numpy reference of the gated and stacked models (LSTM, GRU, tanh RNN; L layers; dropout).

The oracle the core's gated kernels are tested against, written as the
obvious loop: one stream at a time, one step at a time, column vectors,
per-step dicts, one-hot inputs, PyTorch's equations and names. Slow on purpose.

Parameters (PyTorch's nn.RNN / nn.LSTM / nn.GRU, G gates: rnn 1, lstm 4, gru 3):
    weight_ih_l{k} (G*H, I)  I = V for layer 0 (one-hot input; D with an embedding), H above
    weight_hh_l{k} (G*H, H)
    bias_ih_l{k}, bias_hh_l{k} (G*H,)
    Why (V, H), by (V,)                     the output layer, nn.Linear(H, V)
    embed (V, D)                            an input embedding, nn.Embedding(V, D) (optional)
Gate order: lstm (i, f, g, o); gru (r, z, n), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).

State of B streams: (S, B), column b one stream; per layer k its h (H rows),
and for the LSTM then its c (H rows): S = L*H (rnn, gru) or L*2*H (lstm).

Dropout p between layers (PyTorch's: on the output of every layer but the
last, training only): the input of layer k+1 at step t of stream b is
h_k * (u >= p) / (1 - p), u = uniforms[k, t, b] (H,) drawn by the caller.
"""
import numpy as np

from .cells import CELLS as _CELLS
from ..defaults import CLIP, INIT_SCALE
from .optimizers import TABLE

GATES = {name: cell.gates for name, cell in _CELLS.items()}


def param_names(num_layers: int, embedding_size: int = 0) -> list:
    """The parameters' names in storage order (the core's flat layout)."""
    names = []
    for k in range(num_layers):
        names += [f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}"]
    return names + ["Why", "by"] + (["embed"] if embedding_size else [])


def param_shapes(cell: str, vocab_size: int, hidden_size: int, num_layers: int,
                 embedding_size: int = 0) -> dict:
    """{name: shape} in storage order."""
    G, H, V, D = GATES[cell], hidden_size, vocab_size, embedding_size
    shapes = {}
    for k in range(num_layers):
        shapes[f"weight_ih_l{k}"] = (G * H, (D or V) if k == 0 else H)
        shapes[f"weight_hh_l{k}"] = (G * H, H)
        shapes[f"bias_ih_l{k}"] = (G * H,)
        shapes[f"bias_hh_l{k}"] = (G * H,)
    shapes["Why"], shapes["by"] = (V, H), (V,)
    if D:
        shapes["embed"] = (V, D)
    return shapes


def init_params(cell: str, vocab_size: int, hidden_size: int, num_layers: int,
                seed=None, embedding_size: int = 0, init: str = "pytorch") -> dict:
    """PyTorch's initialisation ("pytorch"): every array uniform in [-1/sqrt(H),
    1/sqrt(H)] (nn.LSTM's, and nn.Linear(H, V)'s), the embedding standard normal
    (nn.Embedding's), drawn in storage order from np.random.default_rng(seed).
    "min-char-rnn": the weights standard normal * INIT_SCALE, the biases zero,
    the embedding standard normal, drawn in storage order from the same."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    shapes = param_shapes(cell, vocab_size, hidden_size, num_layers, embedding_size)
    if init == "min-char-rnn":
        return {name: (rng.standard_normal(shape) * (1.0 if name == "embed" else INIT_SCALE)
                       if len(shape) == 2 else np.zeros(shape))
                for name, shape in shapes.items()}
    return {name: (rng.standard_normal(shape) if name == "embed"
                   else rng.uniform(-bound, bound, shape)) for name, shape in shapes.items()}


def state_size(cell: str, hidden_size: int, num_layers: int) -> int:
    """S, the rows of a state: L*H, or L*2*H for the LSTM (h and c per layer)."""
    return num_layers * hidden_size * _CELLS[cell].state_rows


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_forward(cell, x, h, c, Wih, Whh, bih, bhh):
    """One step of one layer for one stream: (h', c', cache). x (I, 1), h, c (H, 1)."""
    H = h.shape[0]
    gx = Wih @ x + bih.reshape(-1, 1)
    gh = Whh @ h + bhh.reshape(-1, 1)
    if cell == "rnn":
        hn = np.tanh(gx + gh)
        return hn, c, (hn,)
    if cell == "lstm":
        a = gx + gh
        i, f = sigmoid(a[:H]), sigmoid(a[H:2 * H])
        g, o = np.tanh(a[2 * H:3 * H]), sigmoid(a[3 * H:])
        cn = f * c + i * g
        tc = np.tanh(cn)
        return o * tc, cn, (i, f, g, o, c, tc)
    r = sigmoid(gx[:H] + gh[:H])
    z = sigmoid(gx[H:2 * H] + gh[H:2 * H])
    hn_ = gh[2 * H:]                      # W_hn h + b_hn
    n = np.tanh(gx[2 * H:] + r * hn_)
    return (1 - z) * n + z * h, c, (r, z, n, hn_)


def cell_backward(cell, dh, dc, h_prev, cache):
    """Backward of cell_forward: (dgx, dgh, dh_prev direct part, dc_prev), where
    dgx, dgh (G*H, 1) are the gradients of W_ih x + b_ih and of W_hh h + b_hh."""
    if cell == "rnn":
        (hn,) = cache
        d = (1 - hn * hn) * dh
        return d, d, np.zeros_like(dh), dc
    if cell == "lstm":
        i, f, g, o, c_prev, tc = cache
        do = dh * tc
        dc = dc + dh * o * (1 - tc * tc)
        da = np.vstack([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                        dc * i * (1 - g * g), do * o * (1 - o)])
        return da, da, np.zeros_like(dh), dc * f
    r, z, n, hn_ = cache
    dn = dh * (1 - z) * (1 - n * n)
    dr = dn * hn_ * r * (1 - r)
    dz = dh * (h_prev - n) * z * (1 - z)
    return np.vstack([dr, dz, dn]), np.vstack([dr, dz, dn * r]), dh * z, dc


def stream_lossFun(cell, L, inputs, targets, state, params, p=0.0, uniforms=None):
    """One stream: (summed loss, raw gradients, last state (S, 1)).
    inputs, targets (T,) ids; state (S, 1); uniforms (L-1, T, H) or None."""
    V, H = params["Why"].shape
    T = len(inputs)
    K = _CELLS[cell].state_rows
    st = np.asarray(state, dtype=np.float64).reshape(L, K, H, 1)
    hs = {(k, -1): st[k, 0].copy() for k in range(L)}
    cs = {(k, -1): (st[k, 1].copy() if K == 2 else np.zeros((H, 1))) for k in range(L)}
    xs, masks, caches, ps = {}, {}, {}, {}
    loss = 0.0
    for t in range(T):
        if "embed" in params:
            x = params["embed"][inputs[t]].reshape(-1, 1)
        else:
            x = np.zeros((V, 1))
            x[inputs[t]] = 1
        for k in range(L):
            xs[k, t] = x
            P = [params[f"{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            hs[k, t], cs[k, t], caches[k, t] = cell_forward(cell, x, hs[k, t - 1],
                                                            cs[k, t - 1], *P)
            x = hs[k, t]
            if k < L - 1 and p > 0:
                masks[k, t] = (uniforms[k, t].reshape(H, 1) >= p) / (1.0 - p)
                x = x * masks[k, t]
        y = params["Why"] @ x + params["by"].reshape(-1, 1)
        e = np.exp(y - np.max(y))
        ps[t] = e / np.sum(e)
        loss += -np.log(ps[t][targets[t], 0])
    grads = {n: np.zeros_like(a) for n, a in params.items()}
    dhnext = {k: np.zeros((H, 1)) for k in range(L)}
    dcnext = {k: np.zeros((H, 1)) for k in range(L)}
    for t in reversed(range(T)):
        dy = ps[t].copy()
        dy[targets[t]] -= 1
        grads["Why"] += dy @ hs[L - 1, t].T
        grads["by"] += dy.ravel()
        dx = params["Why"].T @ dy
        for k in reversed(range(L)):
            dh = dx + dhnext[k]
            dgx, dgh, dh_direct, dcnext[k] = cell_backward(cell, dh, dcnext[k], hs[k, t - 1],
                                                           caches[k, t])
            grads[f"weight_ih_l{k}"] += dgx @ xs[k, t].T
            grads[f"bias_ih_l{k}"] += dgx.ravel()
            grads[f"weight_hh_l{k}"] += dgh @ hs[k, t - 1].T
            grads[f"bias_hh_l{k}"] += dgh.ravel()
            dhnext[k] = params[f"weight_hh_l{k}"].T @ dgh + dh_direct
            dx = params[f"weight_ih_l{k}"].T @ dgx
            if k > 0 and p > 0:
                dx = dx * masks[k - 1, t]
            if k == 0 and "embed" in params:
                grads["embed"][inputs[t]] += dx.ravel()
    last = np.vstack([np.vstack([hs[k, T - 1], cs[k, T - 1]][:K]) for k in range(L)])
    return loss, grads, last


def batch_lossFun(cell, L, inputs, targets, state, params, p=0.0, uniforms=None,
                  clip=True):
    """B streams, the obvious loop over stream_lossFun: (mean over streams of
    the summed losses, mean gradients clipped to [-CLIP, CLIP] after
    averaging (unless clip=False), last states (S, B)). inputs, targets (B, T);
    state (S, B) or None (zeros); uniforms (L-1, T, B, H) or None."""
    B = len(inputs)
    H = params["Why"].shape[1]
    S = state_size(cell, H, L)
    state = np.zeros((S, B)) if state is None else np.asarray(state, dtype=np.float64).reshape(S, B)
    total, grads, last = 0.0, None, []
    for b in range(B):
        u = None if uniforms is None else np.asarray(uniforms)[:, :, b]
        loss, g, h = stream_lossFun(cell, L, list(inputs[b]), list(targets[b]),
                                    state[:, b:b + 1], params, p, u)
        total += loss
        grads = g if grads is None else {n: grads[n] + g[n] for n in g}
        last.append(h)
    grads = {n: g / B for n, g in grads.items()}
    if clip:
        for g in grads.values():
            np.clip(g, -CLIP, CLIP, out=g)
    return total / B, grads, np.hstack(last)


def adam_step(params, moment, memory, grads, learning_rate, t, eps=TABLE["adam"].eps,
              betas=TABLE["adam"].betas):
    """torch.optim.Adam's update at step t on every parameter (grads already clipped)."""
    b1, b2 = betas
    for n in params:
        moment[n] = b1 * moment[n] + (1 - b1) * grads[n]
        memory[n] = b2 * memory[n] + (1 - b2) * grads[n] * grads[n]
        denom = np.sqrt(memory[n]) / np.sqrt(1 - b2 ** t) + eps
        params[n] -= learning_rate / (1 - b1 ** t) * moment[n] / denom


def rmsprop_step(params, memory, grads, learning_rate, alpha=TABLE["rmsprop"].alpha,
                 eps=TABLE["rmsprop"].eps):
    """torch.optim.RMSprop's update (no momentum, not centered) on every
    parameter (grads already clipped); memory is the mean square."""
    for n in params:
        memory[n] = alpha * memory[n] + (1 - alpha) * grads[n] * grads[n]
        params[n] -= learning_rate * grads[n] / (np.sqrt(memory[n]) + eps)


def adagrad_step(params, memory, grads, learning_rate, eps=TABLE["adagrad"].eps):
    """min-char-rnn's update on every parameter (grads already clipped)."""
    for n in params:
        memory[n] += grads[n] * grads[n]
        params[n] -= learning_rate * grads[n] / np.sqrt(memory[n] + eps)
