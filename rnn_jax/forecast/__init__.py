"""The forecasting application: multi-step forecasts from a one-step model, and the
``rnn-jax train --csv`` / ``rnn-jax forecast`` work on users' own series (training, honest
baselines, outputs, and forecasts past the end of a file)."""

from rnn_jax.forecast.closed_loop import batch_closed_loop as batch_closed_loop
from rnn_jax.forecast.closed_loop import batch_teacher_forced as batch_teacher_forced
from rnn_jax.forecast.closed_loop import closed_loop as closed_loop
from rnn_jax.forecast.closed_loop import teacher_forced as teacher_forced
