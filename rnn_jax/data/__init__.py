"""Data: everything a run reads, as arrays. Sine windows with the tutorial's split, users' CSV
series and their time axis, forecasting windows and their normalisation, synthetic series,
characters as streams, and the long-range memory tasks. Nothing here trains."""

from rnn_jax.data.sine import Scaler as Scaler
from rnn_jax.data.sine import WindowData as WindowData
from rnn_jax.data.sine import make_sine_data as make_sine_data
from rnn_jax.data.sine import sine_series as sine_series
from rnn_jax.data.sine import sliding_windows as sliding_windows
