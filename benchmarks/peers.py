"""The sides the benchmarks time, each defined once: our core, the numpy original (reference), PyTorch (hand-written or nn.RNN) and JAX, and the chunks they all read."""
from __future__ import annotations

import numpy as np

from bench_data import DataPass
from charrnn_ext import CharRNN
from charrnn_ext.core import reference
from charrnn_ext.defaults import CLIP, LEARNING_RATE
from charrnn_ext.core.reference import ADAGRAD_EPS
from charrnn_ext.core.spec import PARAM_NAMES

# Every side: reset() zeroes its hidden state(s); step(chunk) trains one step on a
# Chunk and returns the loss; or call(k) trains k steps in one call (its own data
# pass) and returns their losses. Each side trains its own copy of the parameters.

# -- the chunks ----------------------------------------------------------------------

class Chunk:
    """One step's input, made before timing: int32 ids x, y ((T,), or (B, T) for B
    streams), the reference's Python lists xl, yl, torch's int64 tensors xt, yt (time
    first), where it starts in the text and whether the hidden state resets first."""

    def __init__(self, x, y, reset: bool, start: int = 0, torch=None):
        self.x, self.y, self.reset, self.start = x, y, reset, start
        self.xl, self.yl = x.tolist(), y.tolist()
        if torch is not None:
            self.xt = torch.from_numpy(np.ascontiguousarray(x.T, dtype=np.int64))
            self.yt = torch.from_numpy(np.ascontiguousarray(y.T, dtype=np.int64))


class Chunks:
    """The chunks of a data pass (bench_data.DataPass or StreamsDataPass), made on
    demand and kept, so that every side trains on the same ones."""

    def __init__(self, data, torch=None, n: int = 0):
        self.data, self.torch, self.made = data, torch, []
        self.upto(n)

    def upto(self, n: int) -> None:
        while len(self.made) < n:
            x, y, reset = self.data.next()
            self.made.append(Chunk(x, y, reset, self.data.p - self.data.seq, self.torch))

    def __len__(self) -> int:
        return len(self.made)

    def __iter__(self):
        """The chunks made so far."""
        return iter(self.made)

    def __getitem__(self, i):
        self.upto((i.stop if i.stop is not None else len(self.made)) if isinstance(i, slice)
                  else i + 1)
        return self.made[i]


# -- our core and the numpy original --------------------------------------------------

class CoreSide:
    """Our core, one step per call from Python: CharRNN.train_step on one stream or B."""

    def __init__(self, init, B=None):
        self.model = CharRNN.from_params(init)
        self.shape = (init["Whh"].shape[0], 1 if B is None else B)
        self.reset()

    def reset(self):
        self.h = np.zeros(self.shape)

    def step(self, ch):
        loss, self.h = self.model.train_step(ch.x, ch.y, self.h, LEARNING_RATE)
        return loss


class CoreRunner:
    """Our core with a data pass of its own (DataPass), trained n steps at a time from
    Python: a model per thread (bench.py's threads section), the memory probe."""

    def __init__(self, init, ids, T: int):
        self.model, self.data, self.h = CharRNN.from_params(init), DataPass(ids, T), None

    def run(self, n: int) -> None:
        model, data, h = self.model, self.data, self.h
        for _ in range(n):
            x, y, reset = data.next()
            _, h = model.train_step(x, y, None if reset else h, LEARNING_RATE)
        self.h = h


class CoreTrainSide:
    """Our core's own loop: CharRNN.train, k steps of min-char-rnn's data pass per call
    (no Python between them), from position 0 and hprev None, position and hidden state
    carried from call to call."""

    def __init__(self, init, ids, T: int):
        self.model, self.ids, self.T = CharRNN.from_params(init), ids, T
        self.h, self.position = None, 0

    def call(self, k: int):
        losses, self.h, self.position = self.model.train(
            self.ids, k, self.T, hprev=self.h, position=self.position, learning_rate=LEARNING_RATE)
        return losses


class RefSide:
    """The numpy original (charrnn_ext.core.reference: lossFun + Adagrad, on Python lists
    like the seed; batch_train_step for B streams)."""

    def __init__(self, init, B=None):
        self.params = {n: init[n].copy() for n in PARAM_NAMES}
        self.memory = {n: np.zeros_like(init[n]) for n in PARAM_NAMES}
        self.train = reference.train_step if B is None else reference.batch_train_step
        self.shape = (init["Whh"].shape[0], 1 if B is None else B)
        self.reset()

    def reset(self):
        self.h = np.zeros(self.shape)

    def step(self, ch):
        loss, self.h = self.train(ch.xl, ch.yl, self.h, self.params, self.memory, LEARNING_RATE)
        return loss


# -- PyTorch (module-level functions, so that torch.compile sees plain functions) ------

def torch_forward(x, y, h, WxhT, Whh, Why, bh, by):
    """Summed cross-entropy of the chunk and the last hidden state(s).

    One stream: x, y int64 (T,), h (H,); B streams: x, y (T, B), h (B, H). WxhT (V, H)
    is Wxh transposed, so row x[t] is the column of Wxh that the seed's one-hot product
    selects (an embedding lookup); Whh (H, H); Why (V, H); bh (H,); by (V,).
    """
    import torch
    import torch.nn.functional as F

    batched = h.dim() == 2
    a = F.embedding(x, WxhT) + bh               # (T, [B,] H): Wxh[:, x_t] + bh for every t
    hs = []
    for t in range(x.shape[0]):                 # the serial recurrence
        h = torch.tanh(torch.addmm(a[t], h, Whh.t()) if batched else torch.addmv(a[t], Whh, h))
        hs.append(h)
    # the output layer: one matmul for all T steps (and streams)
    logits = torch.addmm(by, torch.cat(hs) if batched else torch.stack(hs), Why.t())
    return F.cross_entropy(logits, y.reshape(-1) if batched else y, reduction="sum"), h


def torch_update(params, grads, memory, lr: float, clip: float, eps: float):
    """Clip in place, then the seed's Adagrad in place: mem += g*g; p -= lr*g/sqrt(mem+eps).
    Called under torch.no_grad()."""
    for p, g, m in zip(params, grads, memory):
        g.clamp_(-clip, clip)
        m.addcmul_(g, g)
        p.addcdiv_(g, (m + eps).sqrt_(), value=-lr)


def compiled_step_fns(torch):
    """torch.compile of the forward (its backward is compiled by AOTAutograd) and of the update."""
    return (torch.compile(torch_forward, fullgraph=True, dynamic=False),
            torch.compile(torch_update, fullgraph=True, dynamic=False))


class _TorchSide:
    """What the torch sides share: the backward pass, clip + Adagrad, the carried state."""

    update = staticmethod(torch_update)

    def learn(self, loss, h):
        for p in self.params:
            p.grad = None
        loss.backward()
        with self.torch.no_grad():
            self.update(self.params, [p.grad for p in self.params], self.memory, LEARNING_RATE,
                        CLIP, ADAGRAD_EPS)
        self.h = h.detach()
        return loss.item()


class TorchSide(_TorchSide):
    """The core's algorithm written in PyTorch (float64 unless ``dtype``): an embedding
    lookup of the Wxh columns, tanh(addmv) per step (addmm over B streams), the output
    layer as one addmm, summed cross-entropy (/ B), loss.backward(), clip and Adagrad in
    place; ``fns``: (forward, update), e.g. compiled_step_fns(torch)."""

    def __init__(self, torch, init, B=None, fns=None, dtype=None):
        self.torch, self.B, self.dtype = torch, B, dtype or torch.float64
        if fns is not None:
            self.forward, self.update = fns
        else:
            self.forward = torch_forward
        arrays = [init["Wxh"].T, init["Whh"], init["Why"], init["bh"].ravel(), init["by"].ravel()]
        self.params = [torch.tensor(np.ascontiguousarray(a), dtype=self.dtype, requires_grad=True)
                       for a in arrays]
        self.memory = [torch.zeros_like(p) for p in self.params]
        H = init["Whh"].shape[0]
        self.shape = (H,) if B is None else (B, H)
        self.reset()

    def reset(self):
        self.h = self.torch.zeros(self.shape, dtype=self.dtype)

    def step(self, ch):
        loss, h = self.forward(ch.xt, ch.yt, self.h, *self.params)
        return self.learn(loss if self.B is None else loss / self.B, h)


class TorchRNNSide(_TorchSide):
    """torch.nn.RNN(V, H) on one-hot inputs + nn.Linear(H, V) over B streams, holding
    the same parameters: Wxh is weight_ih, Whh weight_hh, bh bias_ih; bias_hh is held at
    zero (frozen), so that the model is min-char-rnn's. Summed cross-entropy / B."""

    def __init__(self, torch, init, B: int, dtype=None):
        self.torch, self.B, self.dtype = torch, B, dtype or torch.float64
        (H, V), f = init["Wxh"].shape, self.dtype
        self.rnn = torch.nn.RNN(V, H, nonlinearity="tanh", dtype=f)
        self.out = torch.nn.Linear(H, V, dtype=f)
        with torch.no_grad():
            for p, name in ((self.rnn.weight_ih_l0, "Wxh"), (self.rnn.weight_hh_l0, "Whh"),
                            (self.rnn.bias_ih_l0, "bh"), (self.out.weight, "Why"),
                            (self.out.bias, "by")):
                p.copy_(torch.from_numpy(init[name].reshape(p.shape)))
            self.rnn.bias_hh_l0.zero_()
        self.rnn.bias_hh_l0.requires_grad_(False)
        self.params = [self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0,
                       self.out.weight, self.out.bias]
        self.memory = [torch.zeros_like(p) for p in self.params]
        self.H, self.V = H, V
        self.reset()

    def reset(self):
        self.h = self.torch.zeros(1, self.B, self.H, dtype=self.dtype)

    def step(self, ch):
        F = self.torch.nn.functional
        x = F.one_hot(ch.xt, self.V).to(self.dtype)              # (T, B, V)
        out, h = self.rnn(x, self.h)
        logits = self.out(out.reshape(-1, self.H))                # (T*B, V)
        loss = F.cross_entropy(logits, ch.yt.reshape(-1), reduction="sum") / self.B
        return self.learn(loss, h)


# -- JAX ---------------------------------------------------------------------------------

def make_jax_fns(jax, jnp, T: int):
    """(step, scan_k): the jitted JAX training step (float64 with jax_enable_x64).

    params / mem: tuples (Wxh (H, V), Whh (H, H), Why (V, H), bh (H,), by (V,)).
    step(params, mem, h, x, y) -> (params, mem, h, loss)
    scan_k(params, mem, h, ids, starts, resets) -> (params, mem, h, losses): one
    jax.lax.scan of len(starts) steps, the data pass inside (chunk offsets and reset
    flags precomputed; the text stays on the device).
    """
    lax = jax.lax

    def loss_fn(params, h, x, y):
        Wxh, Whh, Why, bh, by = params
        a = jnp.take(Wxh, x, axis=1).T + bh            # (T, H): gathered Wxh columns + bh

        def rec(h, a_t):
            h = jnp.tanh(a_t + Whh @ h)
            return h, h

        h_last, hs = lax.scan(rec, h, a)                # (T, H), the serial recurrence
        logits = hs @ Why.T + by                        # (T, V): one matmul for all T steps
        logp = jax.nn.log_softmax(logits, axis=-1)
        loss = -jnp.sum(jnp.take_along_axis(logp, y[:, None], axis=1))
        return loss, h_last

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)  # h is not differentiated: truncated BPTT

    def train(params, mem, h, x, y):
        (loss, h_last), grads = grad_fn(params, h, x, y)
        new_p, new_m = [], []
        for p, g, m in zip(params, grads, mem):
            g = jnp.clip(g, -CLIP, CLIP)
            m = m + g * g
            new_p.append(p - LEARNING_RATE * g / jnp.sqrt(m + ADAGRAD_EPS))
            new_m.append(m)
        return tuple(new_p), tuple(new_m), h_last, loss

    def scan_k(params, mem, h, ids, starts, resets):
        def body(carry, inp):
            params, mem, h = carry
            start, reset = inp
            h = jnp.where(reset, jnp.zeros_like(h), h)   # back to the start of the text
            x = lax.dynamic_slice(ids, (start,), (T,))
            y = lax.dynamic_slice(ids, (start + 1,), (T,))
            params, mem, h, loss = train(params, mem, h, x, y)
            return (params, mem, h), loss

        (params, mem, h), losses = lax.scan(body, (params, mem, h), (starts, resets))
        return params, mem, h, losses

    return (jax.jit(train, donate_argnums=(0, 1)),
            jax.jit(scan_k, donate_argnums=(0, 1)))


class _JaxSide:
    def __init__(self, jnp, init):
        arrays = [init["Wxh"], init["Whh"], init["Why"], init["bh"].ravel(), init["by"].ravel()]
        self.params = tuple(jnp.array(a, dtype=jnp.float64) for a in arrays)
        self.mem = tuple(jnp.zeros_like(p) for p in self.params)
        self.jnp, self.H = jnp, arrays[1].shape[0]
        self.reset()

    def reset(self):
        self.h = self.jnp.zeros(self.H, dtype=self.jnp.float64)


class JaxStepSide(_JaxSide):
    """The jitted step called from Python per step, on the chunk's device arrays jx, jy
    (made before timing); float(loss) waits for the step."""

    def __init__(self, jnp, init, step):
        super().__init__(jnp, init)
        self.jit_step = step

    def step(self, ch):
        self.params, self.mem, self.h, loss = self.jit_step(self.params, self.mem, self.h,
                                                            ch.jx, ch.jy)
        return float(loss)


class JaxScanSide(_JaxSide):
    """k steps per call of the jitted lax.scan, the data pass inside: call c trains on
    the chunks starting at starts[c] (resets[c] their reset flags), device arrays."""

    def __init__(self, jnp, init, ids, starts, resets, scan_k):
        super().__init__(jnp, init)
        self.ids, self.starts, self.resets, self.scan_k, self.calls = ids, starts, resets, scan_k, 0

    def call(self, k: int):
        c = self.calls
        assert self.starts.shape[1] == k
        self.params, self.mem, self.h, losses = self.scan_k(self.params, self.mem, self.h, self.ids,
                                                            self.starts[c], self.resets[c])
        self.calls += 1
        return np.asarray(losses)
