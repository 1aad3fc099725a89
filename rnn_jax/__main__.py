"""``python -m rnn_jax`` runs the ``rnn-jax`` command."""

import sys

from rnn_jax.cli.main import main

sys.exit(main())
