"""``conv1d``: the classic Conv1D model, convolutions over frequency frame by frame."""

from keras import layers

from . import head
from ..settings import Conv1dConfig


def stack(x, *, n_classes: int, config: Conv1dConfig):
    """The classic Conv1D model: 1-D convolutions over frequency, frame by frame.

    Written as ``Conv2D(w, (1, k))``, which computes exactly what the classic
    ``TimeDistributed(Conv1D(w, k))`` does with the same weights, 2-3x faster on CPU.
    """
    for i, width in enumerate(config.filters):
        act = "tanh" if i == 0 else "relu"
        x = layers.Conv2D(width, (1, config.kernel_size), activation=act, name=f"conv1d_{i}")(x)
        if i < len(config.filters) - 1:
            x = layers.MaxPooling2D((2, 2), name=f"pool_{i}")(x)
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    return head(x, n_classes=n_classes, dense=config.dense, dropout=config.dropout, l2=config.l2)
