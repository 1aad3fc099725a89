"""Recurrent cells behind one protocol (``rnn_jax.cells.base.Cell``), and the registry that
turns a cell's name (from a config or the command line) into its class.

Adding a cell: one file beside these, and one line in ``REGISTRY`` (or, from outside the
package, ``register("name", MyCell)``).
"""

from __future__ import annotations

import inspect

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


# What every cell's constructor takes besides its options (the model builder passes these).
_COMMON = ("self", "key", "input_dim", "hidden_dim", "scale", "dtype")


def cell_option_defaults(cls: type[Cell]) -> dict[str, object]:
    """The options a cell takes, with their defaults: the keyword parameters of its
    ``__init__`` other than ``key``, the sizes, ``scale`` and ``dtype``. A parameter annotated
    ``object`` is accepted only to be refused with a clear message (a gated cell's
    ``activation``), so it is no option."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.name not in _COMMON
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.annotation not in (object, "object")
    }


def check_options(name: str, options: dict) -> None:
    """Reject an option the named cell does not take, saying which ones it does take."""
    takes_these = tuple(cell_option_defaults(cell_class(name)))
    for option, value in options.items():
        if option not in takes_these:
            takes = f"takes {', '.join(takes_these)}" if takes_these else "takes no options"
            raise InputError(f"the {name} cell takes no {option} (it {takes}); got {option}={value!r}")


def _option_value(cell: str, option: str, text: str, default: object) -> object:
    """``text`` as the type of the option's default (a string where the default is ``None``)."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise InputError(f"the {cell} cell's {option} must be true or false; got {text!r}")
        return text.lower() == "true"
    if isinstance(default, int | float):
        try:
            return type(default)(text)
        except ValueError:
            raise InputError(
                f"the {cell} cell's {option} must be {type(default).__name__}; got {text!r}"
            ) from None
    if default is not None and not isinstance(default, str):
        raise InputError(f"the {cell} cell's {option} is a Python value; set it in Python, not as text")
    return text


def parse_cell_options(name: str, text: str) -> dict[str, object]:
    """``"reset=before"`` or ``"activation=relu,init=tutorial"`` -> the keyword options of the
    named cell, checked against its constructor's signature (``cell_option_defaults``) and
    converted to the types of their defaults. ``""`` is no options.

    >>> parse_cell_options("gru", "reset=before")
    {'reset': 'before'}
    """
    if not isinstance(text, str):
        raise InputTypeError(f"cell_options must be a string of name=value pairs; got {text!r}")
    defaults = cell_option_defaults(cell_class(name))
    options: dict[str, object] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        option, sep, value = item.partition("=")
        option = option.strip()
        if not sep or not option:
            raise InputError(f"cell_options must be name=value pairs separated by commas; got {item!r}")
        if option in options:
            raise InputError(f"cell_options gives {option} twice")
        check_options(name, {option: value.strip()})
        options[option] = _option_value(name, option, value.strip(), defaults[option])
    return options


def config_cell_options(cells: str | list[str], *, activation: str | None = None, text: str = "") -> dict:
    """The keyword options a config sets on its cells: its ``activation`` field (``None``:
    the cell's default) and its ``cell_options`` text (``parse_cell_options``). Every named
    cell must take every option, since one set serves all layers."""
    names = list(dict.fromkeys([cells] if isinstance(cells, str) else cells))
    options: dict[str, object] = {}
    for name in names:
        options = parse_cell_options(name, text)
    if activation is not None:
        if "activation" in options:
            raise InputError("give the activation once: as activation or in cell_options, not both")
        options["activation"] = activation
    for name in names:
        check_options(name, options)
    return options


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
    "cell_option_defaults",
    "check_options",
    "config_cell_options",
    "elman_step",
    "make_cell",
    "parse_cell_options",
    "register",
]
