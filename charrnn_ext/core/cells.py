"""The recurrent cells: the one table of what each cell is (gates, state, names, labels, equations)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One recurrent cell, as every layer of the package needs to know it.

    Its parameters per layer k are PyTorch's: weight_ih_l{k} (G*H, I),
    weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H,), the gate blocks
    in ``gate_order``; a stream's state holds, per layer, one H-row block per
    entry of ``state_parts`` (h, then c for the LSTM)."""
    name: str             # as --cell, checkpoints and the core say it
    gates: int            # G: the gate blocks of weight_ih / weight_hh
    gate_order: str       # PyTorch's order of those blocks
    state_parts: tuple    # per layer, the state's H-row blocks
    label: str            # how messages and pages name it
    torch_module: str     # the torch.nn module with the same equations and layout
    onnx_order: tuple     # ONNX's operator order of the gate blocks, as indices into gate_order
    equations: str        # one line for the inspect page

    @property
    def state_rows(self) -> int:
        """K: the state's H-row blocks per layer (a stream's state is L*K*H rows)."""
        return len(self.state_parts)


CELLS = {cell.name: cell for cell in (
    Cell("rnn", 1, "h", ("h",), "tanh RNN", "RNN", (0,),
         "h = tanh(W_ih x + b_ih + W_hh h + b_hh)"),
    Cell("lstm", 4, "ifgo", ("h", "c"), "LSTM", "LSTM", (0, 3, 1, 2),
         "i, f, o = sigmoid(...), g = tanh(...); c = f c + i g; h = o tanh(c)"),
    Cell("gru", 3, "rzn", ("h",), "GRU", "GRU", (1, 0, 2),
         "r, z = sigmoid(...); n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h = (1 - z) n + z h"),
)}
NAMES = tuple(CELLS)    # the --cell choices, in this order
MINCHAR_EQUATIONS = "h = tanh(Wxh x + Whh h + bh)"   # min-char-rnn's own model: one tanh layer


def cell(name) -> Cell:
    """The cell called ``name``; ValueError naming the choices otherwise."""
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(NAMES)}, got {name!r}")
    return CELLS[name]


def by_gates(gates: int) -> Cell | None:
    """The one cell with this many gate blocks (how files written before the cell
    was stored by name are read), or None if none or several have it."""
    found = [c for c in CELLS.values() if c.gates == gates]
    return found[0] if len(found) == 1 else None
