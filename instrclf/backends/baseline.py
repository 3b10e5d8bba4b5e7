"""``baseline``: multinomial logistic regression on the mean log-mel spectrum."""

from keras import layers, regularizers

from . import frames
from ..settings import BaselineConfig


def stack(x, *, n_classes: int, config: BaselineConfig):
    """Mean normalised log-mel over time into one softmax layer: multinomial logistic regression."""
    x = layers.GlobalAveragePooling1D(name="mean_over_time")(frames(x))
    return layers.Dense(
        n_classes, activation="softmax", kernel_regularizer=regularizers.l2(config.l2), dtype="float32", name="softmax"
    )(x)
