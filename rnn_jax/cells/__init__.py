"""Recurrent cells behind one protocol (``rnn_jax.cells.base.Cell``), and the registry that
turns a cell's name (from a config or the command line) into its class.

Adding a cell: one file beside these, and one line in ``REGISTRY`` (or, from outside the
package, ``register("name", MyCell)``).
"""

from __future__ import annotations

from rnn_jax.cells.base import Cell, CellGrads, State
from rnn_jax.cells.elman import ACTIVATIONS, INITS, Elman, elman_step
from rnn_jax.cells.gru import GRU
from rnn_jax.cells.indrnn import IndRNN
from rnn_jax.cells.lstm import LSTM
from rnn_jax.errors import InputError, InputTypeError

REGISTRY: dict[str, type[Cell]] = {
    "elman": Elman,
    "gru": GRU,
    "lstm": LSTM,
    "indrnn": IndRNN,
}


def cell_names() -> tuple[str, ...]:
    """The names a config or command line may give, registered ones included."""
    return tuple(REGISTRY)


def register(name: str, cls: type[Cell]) -> None:
    """Make ``cls`` available by ``name`` to configs, training, sweeps and ``gradcheck``."""
    if not (isinstance(cls, type) and issubclass(cls, Cell)):
        raise InputTypeError(f"cls must be a subclass of rnn_jax.cells.Cell; got {cls!r}")
    if not name or not isinstance(name, str):
        raise InputError(f"name must be a non-empty string; got {name!r}")
    REGISTRY[name] = cls


def cell_class(name: str) -> type[Cell]:
    """The class registered as ``name``; ``ValueError`` naming the choices otherwise."""
    if name not in REGISTRY:
        raise InputError(f"cell must be one of {', '.join(REGISTRY)}; got {name!r}")
    return REGISTRY[name]


def check_options(name: str, options: dict) -> None:
    """Reject an option the named cell does not take, saying which ones it does take."""
    cls = cell_class(name)
    for option, value in options.items():
        if option not in cls.OPTIONS:
            takes = f"takes {', '.join(cls.OPTIONS)}" if cls.OPTIONS else "takes no options"
            raise InputError(f"the {name} cell takes no {option} (it {takes}); got {option}={value!r}")


def make_cell(name: str, *, key, input_dim: int, hidden_dim: int, scale=1.0, dtype=None, **options) -> Cell:
    """A freshly initialised cell of the registered ``name``; ``options`` are checked first."""
    check_options(name, options)
    extra = {} if dtype is None else {"dtype": dtype}
    return cell_class(name)(
        key=key, input_dim=input_dim, hidden_dim=hidden_dim, scale=scale, **extra, **options
    )


__all__ = [
    "ACTIVATIONS",
    "GRU",
    "INITS",
    "LSTM",
    "REGISTRY",
    "Cell",
    "CellGrads",
    "Elman",
    "IndRNN",
    "State",
    "cell_class",
    "cell_names",
    "check_options",
    "elman_step",
    "make_cell",
    "register",
]
