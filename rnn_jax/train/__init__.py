"""Training as pure functions: a run's static settings (``TrainConfig``), its traced
hyperparameters (``Hyperparams``), ``make_train`` (a whole run in one ``lax.scan``, vmappable
over members), streams trained with TBPTT(k1, k2), and member placement on a device mesh.
Nothing here touches files or the host's clock; ``rnn_jax.runs`` drives these programs."""

from rnn_jax.train.loop import Hyperparams as Hyperparams
from rnn_jax.train.loop import TrainConfig as TrainConfig
from rnn_jax.train.loop import TrainState as TrainState
from rnn_jax.train.loop import make_hparams as make_hparams
from rnn_jax.train.loop import make_train as make_train
from rnn_jax.train.stream import StreamConfig as StreamConfig
from rnn_jax.train.stream import make_stream_train as make_stream_train
