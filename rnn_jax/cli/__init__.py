"""The ``rnn-jax`` command and the argument handling every experiment script shares.

Kept free of JAX at import (see ``rnn_jax.runs``): the command answers signals first."""
