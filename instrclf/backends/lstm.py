"""``lstm``: the classic recurrent model, a bidirectional LSTM over the frames."""

from keras import layers

from . import frames, head, time_pool
from ..settings import LstmConfig


def stack(x, *, n_classes: int, config: LstmConfig):
    """The classic recurrent model: per-frame dense, a bidirectional LSTM, skip concatenation.

    Frames are first averaged in groups of ``time_pool`` (8: 80 ms steps instead of 10 ms):
    the recurrence is sequential, so its cost falls by that factor, and the timbre of a
    held note changes slowly.
    """
    x = time_pool(x, config.time_pool)
    s = layers.Dense(config.frame_dense, activation="tanh", name="frame_dense")(frames(x))
    r = layers.Bidirectional(layers.LSTM(config.units, return_sequences=True), name="bilstm")(s)
    x = layers.Concatenate(axis=2, name="skip")([s, r])
    x = layers.Dense(config.dense[0], activation="relu", name="dense_0")(x)
    x = layers.MaxPooling1D(name="pool")(x)
    x = layers.Dense(config.dense[1], activation="relu", name="dense_1")(x)
    x = layers.Flatten(name="flatten")(x)
    return head(x, n_classes=n_classes, dense=config.head, dropout=config.dropout, l2=config.l2)
