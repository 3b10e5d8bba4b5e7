"""Training-time augmentation of dB mel spectrograms: what differs between two recordings of a note.

Each transform works on a batch ``(batch, frames, n_mels, 1)`` of the front end's dB
output and draws its randomness from a stateless seed per batch, so a seed gives the
same augmented batches on every run. Only the training set is augmented
(:func:`instrclf.train.dataset` applies it when ``augment`` is given); validation, test
and the unseen library never pass through here.

The back end starts with a LayerNormalization of each frame over the mel axis, so a
gain change is a no-op by construction and is not offered.

- ``eq_db``: a smooth random EQ curve over the mel bands (three cosines), up to
  +-``eq_db`` dB: microphones, rooms and sample libraries colour the spectrum differently.
- ``mel_shift``: shifts the spectrum by up to +-``mel_shift`` mel bands (about a
  semitone per band at 128 mels in the mid range): tuning and formant differences.
- ``freq_mask`` / ``time_mask``: SpecAugment masks of up to that many bands / frames,
  set to the example's mean level.
- ``noise_snr_db``: adds flat noise whose level is this many dB (drawn from the range)
  below the example's mean power: hiss and room noise.
"""

import numpy as np

from .runtime import tf
from .settings import AugmentSettings


def _uniform(seed, shape, low, high):
    return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high)


def _seeds(seed, n):
    """``n`` independent stateless seeds from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=n))


def eq(x, seed, max_db: float):
    """A smooth random EQ curve per example, in dB, added to every frame."""
    batch, n_mels = tf.shape(x)[0], tf.shape(x)[2]
    a, phase = _seeds(seed, 2)
    amp = _uniform(a, (batch, 3, 1), -max_db / 3, max_db / 3)
    phi = _uniform(phase, (batch, 3, 1), 0.0, 2 * np.pi)
    m = tf.cast(tf.range(n_mels), tf.float32)[None, None, :] / tf.cast(n_mels, tf.float32)
    k = tf.constant([1.0, 2.0, 3.0])[None, :, None]
    curve = tf.reduce_sum(amp * tf.cos(np.pi * k * m + phi), axis=1)  # (batch, n_mels)
    return x + curve[:, None, :, None]


def mel_shift(x, seed, max_bands: int):
    """Shift each example's spectrum by a whole number of mel bands, repeating the edge band."""
    batch, n_mels = tf.shape(x)[0], tf.shape(x)[2]
    shift = tf.random.stateless_uniform((batch, 1), seed=seed, minval=-max_bands, maxval=max_bands + 1, dtype=tf.int32)
    idx = tf.clip_by_value(tf.range(n_mels)[None, :] - shift, 0, n_mels - 1)
    return tf.gather(x, idx, axis=2, batch_dims=1)


def _mask(x, seed, max_width: int, axis: int):
    """Set a random band of ``axis`` (1: frames, 2: mel bands) of up to ``max_width`` to the example's mean."""
    batch, size = tf.shape(x)[0], tf.shape(x)[axis]
    a, b = _seeds(seed, 2)
    width = tf.random.stateless_uniform((batch, 1), seed=a, minval=0, maxval=max_width + 1, dtype=tf.int32)
    start = tf.cast(_uniform(b, (batch, 1), 0.0, 1.0) * tf.cast(size - width + 1, tf.float32), tf.int32)
    pos = tf.range(size)[None, :]
    masked = (pos >= start) & (pos < start + width)  # (batch, size)
    shape = [batch, 1, 1, 1]
    shape[axis] = size
    masked = tf.reshape(masked, shape)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return tf.where(masked, mean, x)


def noise(x, seed, snr_db: tuple):
    """Add flat noise ``snr`` dB below each example's mean power (in the power domain)."""
    batch = tf.shape(x)[0]
    snr = _uniform(seed, (batch, 1, 1, 1), snr_db[0], snr_db[1])
    power = tf.pow(10.0, x / 10.0)
    mean_db = 10.0 * tf.math.log(tf.reduce_mean(power, axis=[1, 2, 3], keepdims=True)) / np.log(10.0)
    return 10.0 * tf.math.log(power + tf.pow(10.0, (mean_db - snr) / 10.0)) / np.log(10.0)


def active(settings: AugmentSettings) -> bool:
    """Whether any transform is on."""
    return bool(settings.eq_db or settings.mel_shift or settings.freq_mask or settings.time_mask or settings.noise_snr_db)


def batch_augmenter(settings: AugmentSettings):
    """A function ``(x, y, seed) -> (x', y)`` applying every transform that is on, in a fixed order."""

    def apply(x, y, seed):
        s = _seeds(seed, 5)
        if settings.eq_db:
            x = eq(x, s[0], settings.eq_db)
        if settings.mel_shift:
            x = mel_shift(x, s[1], settings.mel_shift)
        if settings.noise_snr_db:
            x = noise(x, s[2], tuple(settings.noise_snr_db))
        if settings.freq_mask:
            x = _mask(x, s[3], settings.freq_mask, axis=2)
        if settings.time_mask:
            x = _mask(x, s[4], settings.time_mask, axis=1)
        return x, y

    return apply
