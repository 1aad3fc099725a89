"""Runs on the host: the one driver behind ``fit``, ``fit_stream`` and sweeps (compiled chunks
of epochs sized by their time), its checkpoints, logs and signal handling.

This package's own import is kept free of JAX: a command imports ``rnn_jax.runs.signals``
first, to answer Ctrl-C while JAX itself is still importing. Import the modules you need
(``rnn_jax.runs.driver``, ``rnn_jax.runs.sweep``); the common names are also on ``rnn_jax``."""
