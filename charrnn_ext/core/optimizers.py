"""The optimizer table: each optimizer's name, state slots, constants, defaults and label.

Every optimizer updates a parameter p from its gradient g after min-char-rnn's
clip (g limited to [-CLIP, CLIP]); its state is held in slots, one array of
p's shape each ("memory", and Adam's "moment"), plus Adam's count of updates
(adam_steps). The core (src/core/update.pxi) runs each under an enum of the
same name; settings (--optimizer), checkpoints, the models, memory estimates,
the numpy references and the tests read this table.
"""
from dataclasses import dataclass, field

from ..defaults import CLIP


@dataclass(frozen=True)
class Optimizer:
    name: str                   # as --optimizer, a checkpoint's "optimizer" and the core spell it
    label: str                  # as printed ("Adam learning rate 0.002")
    slots: tuple                # state arrays of the parameters' shapes, in storage order
    counts_steps: bool          # keeps adam_steps (its bias corrections need the count)
    eps: float                  # added to the denominator (see formula)
    formula: str                # the update, after the clip
    about: str                  # a few words for --help
    betas: tuple = ()           # Adam's decay rates of its first and second moments
    alpha: float = 0.0          # RMSprop's decay rate of its mean square
    # a recipe's learning rate when this optimizer is not the recipe's own (settings.recipe_rate)
    rates: dict = field(default_factory=dict)
    max_rate: float = 0.0       # a rate above this is warned about (0: never)
    sparse: bool = False        # a zero gradient changes neither a parameter nor its state

    def core_options(self) -> dict:
        """The keyword arguments of the core's workspaces (Workspace, GatedWorkspace)."""
        beta1, beta2 = self.betas or (0.0, 0.0)     # read by Adam only
        return dict(optimizer=self.name, eps=self.eps, beta1=beta1, beta2=beta2,
                    alpha=self.alpha)


TABLE = {o.name: o for o in (
    Optimizer("adagrad", "Adagrad", ("memory",), False, 1e-8,
              "memory += g^2; p -= lr * g / sqrt(memory + eps)", "min-char-rnn's",
              rates={"batched": 0.02}, sparse=True),
    Optimizer("adam", "Adam", ("memory", "moment"), True, 1e-8,
              "moment = b1*moment + (1-b1)*g; memory = b2*memory + (1-b2)*g^2; "
              "p -= lr/(1-b1^t) * moment / (sqrt(memory)/sqrt(1-b2^t) + eps)",
              "torch.optim.Adam's", betas=(0.9, 0.999), rates={"min-char-rnn": 0.002},
              max_rate=0.02),
    Optimizer("rmsprop", "RMSprop", ("memory",), False, 1e-8,
              "memory = alpha*memory + (1-alpha)*g^2; p -= lr * g / (sqrt(memory) + eps)",
              "torch.optim.RMSprop's, char-rnn's default", alpha=0.99,
              rates={"min-char-rnn": 0.002, "batched": 0.002}, max_rate=0.02),
)}
OPTIMIZERS = tuple(TABLE)       # the names, in the core's enum order
SLOTS = ("memory", "moment")    # every slot any optimizer has, in storage order
STEPS = "adam_steps"            # the name of the count of updates (counts_steps)


def get(name) -> Optimizer:
    """The optimizer called ``name``; ValueError names the choices."""
    if not isinstance(name, str) or name not in TABLE:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, "
                         f"got {name!r}")
    return TABLE[name]


def label(name: str) -> str:
    """E.g. "RMSprop"."""
    return get(name).label


def has(name: str, slot: str) -> bool:
    """Whether optimizer ``name`` keeps the state slot ``slot``."""
    return slot in get(name).slots


def inferred(slots_present) -> str:
    """The optimizer of a checkpoint written before checkpoints named it
    (only Adagrad and Adam existed): Adam if it holds a moment, else Adagrad."""
    return "adam" if "moment" in slots_present else "adagrad"


def help_text() -> str:
    """--optimizer's help: each name and what it is."""
    return (", ".join(f"{o.name} ({o.about})" for o in TABLE.values())
            + f"; gradients are clipped to [-{CLIP:g}, {CLIP:g}] first")
