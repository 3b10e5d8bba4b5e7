"""``conv2d``: the classic Conv2D model, convolutions over time x frequency."""

from keras import layers

from . import head, time_pool
from ..settings import Conv2dConfig


def stack(x, *, n_classes: int, config: Conv2dConfig):
    """The classic Conv2D model: 2-D convolutions over time x frequency."""
    x = time_pool(x, config.time_pool)
    for i, (width, k) in enumerate(zip(config.filters, config.kernel_sizes)):
        act = "tanh" if i == 0 else "relu"
        x = layers.Conv2D(width, (k, k), activation=act, padding="same", name=f"conv2d_{i}")(x)
        if i < len(config.filters) - 1:
            x = layers.MaxPooling2D((2, 2), padding="same", name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    return head(x, n_classes=n_classes, dense=config.dense, dropout=config.dropout, l2=config.l2)
