"""Training-time augmentation (instrclf.augment): each transform does what it says, is seeded, and only trains."""

import numpy as np
import pytest
from synthetic import TINY_PARAMS

from instrclf import augment, train
from instrclf.runtime import tf
from instrclf.settings import AugmentSettings

OFF = TINY_PARAMS["train"]["augment"]
ONE_EACH = {
    "eq_db": {"eq_db": 6.0},
    "mel_shift": {"mel_shift": 2},
    "freq_mask": {"freq_mask": 5},
    "time_mask": {"time_mask": 4},
    "noise_snr_db": {"noise_snr_db": [10, 30]},
}


def settings(**on):
    return AugmentSettings.from_params(OFF | on)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = rng.uniform(-60, 0, size=(6, 20, 16, 1)).astype(np.float32)
    return tf.constant(x), tf.constant(np.arange(6, dtype=np.int32))


SEED = tf.constant([3, 4], dtype=tf.int64)


def test_eq_adds_one_smooth_curve_per_example_within_its_bound(batch):
    x, _ = batch
    out = augment.eq(x, SEED, 6.0).numpy()
    curve = out - x.numpy()
    # The same curve on every frame of an example, different between examples, within +-6 dB.
    np.testing.assert_allclose(curve, np.broadcast_to(curve[:, :1], curve.shape), atol=1e-4)
    assert not np.allclose(curve[0, 0], curve[1, 0])
    assert np.abs(curve).max() <= 6.0 + 1e-5 and np.abs(curve).max() > 0.5
    assert np.abs(np.diff(curve[:, 0, :, 0], axis=1)).max() < 6.0  # smooth: no jumps of the whole range


def test_mel_shift_moves_whole_bands_and_repeats_the_edge(batch):
    x, _ = batch
    out = augment.mel_shift(x, SEED, 2).numpy()
    xs = x.numpy()
    for i in range(len(xs)):
        matches = [s for s in range(-2, 3) if np.array_equal(out[i], xs[i][:, np.clip(np.arange(16) - s, 0, 15)])]
        assert matches, f"example {i} is not a shift of at most 2 bands"


@pytest.mark.parametrize(("axis", "name"), [(2, "freq"), (1, "time")])
def test_a_mask_sets_one_contiguous_band_to_the_examples_mean(batch, axis, name):
    x, _ = batch
    out = augment._mask(x, SEED, 5, axis=axis).numpy()
    xs = x.numpy()
    changed_any = False
    for i in range(len(xs)):
        diff = np.any(out[i] != xs[i], axis=tuple(a for a in (0, 1, 2) if a != axis - 1))
        where = np.flatnonzero(diff)
        assert len(where) <= 5
        if len(where):
            changed_any = True
            assert np.array_equal(where, np.arange(where[0], where[-1] + 1))  # contiguous
            band = np.take(out[i], where, axis=axis - 1)
            np.testing.assert_allclose(band, xs[i].mean(), rtol=1e-5)
    assert changed_any


def test_noise_only_raises_the_level_and_most_where_it_was_quiet(batch):
    x, _ = batch
    out = augment.noise(x, SEED, (10.0, 30.0)).numpy()
    xs = x.numpy()
    assert np.all(out >= xs - 1e-4)
    quiet, loud = xs < np.percentile(xs, 10), xs > np.percentile(xs, 90)
    assert (out - xs)[quiet].mean() > (out - xs)[loud].mean()


@pytest.mark.parametrize("name", sorted(ONE_EACH))
def test_each_transform_is_deterministic_for_a_seed_and_only_touches_training_data(name):
    rng = np.random.default_rng(1)
    x = rng.uniform(-60, 0, size=(10, 20, 16, 1)).astype(np.float32)
    y = np.arange(10, dtype=np.int32)
    on = settings(**ONE_EACH[name])
    assert augment.active(on) and not augment.active(settings())

    def batches(**kwargs):
        return [(bx.numpy(), by.numpy()) for bx, by in train.dataset(x, y, batch_size=4, **kwargs)]

    a, b, c = batches(seed=1, augment=on), batches(seed=1, augment=on), batches(seed=2, augment=on)
    plain = batches(seed=1)
    for (ax, ay), (bx, by) in zip(a, b):
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ay, by)
    assert not all(np.array_equal(ax, cx) for (ax, _), (cx, _) in zip(a, c))
    # Same shuffle as without augmentation, different values: the transform is applied.
    assert [list(ay) for _, ay in a] == [list(py) for _, py in plain]
    assert not all(np.array_equal(ax, px) for (ax, _), (px, _) in zip(a, plain))
    # Data without a seed (validation, test) is never augmented, even when asked.
    with pytest.raises(ValueError, match="needs a seed"):
        train.dataset(x, y, batch_size=4, augment=on)
    val = np.concatenate([bx for bx, _ in train.dataset(x, y, batch_size=4)])
    np.testing.assert_array_equal(val, x)


def test_a_job_augments_only_its_training_batches():
    from dataclasses import replace

    from instrclf import settings as s

    job = s.TrainingJob.from_params(TINY_PARAMS, model="baseline", fold=0)
    job = replace(job, augment=s.AugmentSettings.from_params(OFF | {"eq_db": 3.0}), seed=7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 6, 8, 1)).astype("float32")
    y = np.arange(24, dtype="int32") % 3
    train_ds, val_ds = train.datasets(job, x, y, x, y)
    # Validation: every window once, in order, exactly as given.
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in val_ds]), x)
    # Training: the same windows, shuffled and each moved by a smooth EQ (no window left as it was).
    seen = [(bx.numpy(), by.numpy()) for bx, by in train_ds]
    got_x, got_y = np.concatenate([b[0] for b in seen]), np.concatenate([b[1] for b in seen])
    assert sorted(got_y.tolist()) == sorted(y.tolist()) and not np.array_equal(got_y, y)
    for window, label in zip(got_x, got_y, strict=True):
        assert not any(np.array_equal(window, original) for original in x[y == label])
    # The same job gives the same augmented batches (seeded).
    again = np.concatenate([b[0].numpy() for b in train.datasets(job, x, y, x, y)[0]])
    np.testing.assert_array_equal(again, got_x)


# --------------------------------------------------------------------------- measured levels


@pytest.mark.parametrize("snr_db", [(0.0, 0.0), (10.0, 10.0), (20.0, 30.0)])
def test_noise_is_added_below_the_examples_mean_power_by_the_drawn_snr(batch, snr_db):
    """The added power (output minus input, in the power domain) is flat, and the signal's
    mean power over it is an SNR inside the configured range: noise below the signal, not above."""
    x, _ = batch
    out = augment.noise(x, SEED, snr_db).numpy().astype(np.float64)
    xs = x.numpy().astype(np.float64)
    added = 10 ** (out / 10) - 10 ** (xs / 10)
    for i in range(len(xs)):
        level = np.median(added[i])
        np.testing.assert_allclose(added[i], level, rtol=2e-3)  # flat: the same power in every bin
        measured = 10 * np.log10(np.mean(10 ** (xs[i] / 10)) / level)
        assert snr_db[0] - 0.05 <= measured <= snr_db[1] + 0.05


def test_mel_shift_uses_its_whole_range_and_no_more():
    """Over many examples every shift from -2 to +2 occurs, and never 3: the knob's bound is what it says."""
    rng = np.random.default_rng(2)
    x = tf.constant(rng.uniform(-60, 0, size=(200, 3, 16, 1)).astype(np.float32))
    out = augment.mel_shift(x, SEED, 2).numpy()
    xs = x.numpy()
    shifts = []
    for i in range(len(xs)):
        found = [s for s in range(-4, 5) if np.array_equal(out[i], xs[i][:, np.clip(np.arange(16) - s, 0, 15)])]
        assert len(found) == 1
        shifts.append(found[0])
    assert set(shifts) == {-2, -1, 0, 1, 2}


def test_eq_reaches_but_never_exceeds_its_bound():
    rng = np.random.default_rng(3)
    x = tf.constant(rng.uniform(-60, 0, size=(200, 2, 64, 1)).astype(np.float32))
    curve = (augment.eq(x, SEED, 6.0) - x).numpy()
    assert np.abs(curve).max() <= 6.0 + 1e-4
    assert np.abs(curve).max(axis=(1, 2, 3)).max() > 4.0  # the range is used, not a tenth of it


def test_the_time_mask_is_drawn_apart_from_the_frequency_mask():
    """Both masks on: each has its own band, not the other's band turned ninety degrees."""
    x = np.random.default_rng(2).uniform(-60, 0, size=(32, 16, 16, 1)).astype(np.float32)
    out, _ = augment.batch_augmenter(settings(freq_mask=4, time_mask=4))(tf.constant(x), tf.constant(np.zeros(32)), SEED)
    changed = out.numpy()[..., 0] != x[..., 0]  # (example, frame, band)
    masked_bands = [tuple(np.flatnonzero(c.all(axis=0))) for c in changed]  # every frame changed: the band mask
    masked_frames = [tuple(np.flatnonzero(c.all(axis=1))) for c in changed]  # every band changed: the frame mask
    assert any(masked_bands) and any(masked_frames)
    assert sum(b == f for b, f in zip(masked_bands, masked_frames)) < 8


@pytest.mark.parametrize(("axis", "size"), [(1, 6), (2, 8)], ids=["time", "freq"])
def test_a_mask_can_fall_on_every_band_the_first_and_last_included(axis, size):
    """SpecAugment draws the band's start uniformly over every place the band fits: over many examples
    a one-wide mask covers each frame (band) of the axis, the edges as often as the middle."""
    shape = [1000, 6, 8, 1]
    x = tf.random.stateless_normal(shape, seed=[5, 6]) * 10.0
    out = augment._mask(x, SEED, 1, axis=axis).numpy()
    changed = np.any(out != x.numpy(), axis=tuple(a for a in (1, 2, 3) if a != axis))  # (batch, size)
    assert changed.sum(axis=1).max() == 1
    hits = changed.sum(axis=0)
    assert len(hits) == size and hits.min() > 0.5 * hits.mean(), hits


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_each_epoch_augments_its_windows_anew():
    """Eight copies of one window in one batch: each epoch must draw new EQ curves, not replay the first epoch's."""
    window = np.random.default_rng(2).uniform(-60, 0, size=(1, 20, 16, 1)).astype(np.float32)
    x, y = np.repeat(window, 8, axis=0), np.arange(8, dtype=np.int32)
    ds = train.dataset(x, y, batch_size=8, seed=1, augment=settings(eq_db=6.0))
    first, second = (np.sort(np.concatenate([bx.numpy() for bx, _ in ds]).reshape(8, -1), axis=0) for _ in range(2))
    assert not np.allclose(first, second)


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_the_eq_curves_three_cosines_have_amplitudes_of_their_own():
    """Each example's curve is a sum of three cosines (1, 2 and 3 half periods over the mel axis), each
    with its own amplitude in +-max_db / 3: fitted back, the three amplitudes differ and fill that range."""
    n_mels, max_db = 64, 6.0
    x = tf.zeros((256, 1, n_mels, 1))
    curve = (augment.eq(x, SEED, max_db)).numpy()[:, 0, :, 0]  # (example, band)
    m = np.arange(n_mels) / n_mels
    basis = np.stack([f(np.pi * k * m) for k in (1, 2, 3) for f in (np.cos, np.sin)], axis=1)  # (band, 6)
    coef, residual, *_ = np.linalg.lstsq(basis, curve.T, rcond=None)
    assert np.abs(basis @ coef - curve.T).max() < 1e-4  # exactly three cosines of those periods
    amps = np.hypot(coef[0::2], coef[1::2]).T  # (example, harmonic)
    assert amps.max() <= max_db / 3 + 1e-4
    spread = amps.max(axis=1) - amps.min(axis=1)
    assert np.mean(spread > 0.1) > 0.8, spread  # not one amplitude shared by the three
    # amplitudes uniform in +-max_db / 3 and phases uniform over the circle: |amplitude| is uniform
    # on [0, max_db / 3] and the phase, known up to the amplitude's sign, uniform on [0, pi)
    assert ks_uniform(amps.ravel(), 0.0, max_db / 3) < 0.08
    phases = np.mod(np.arctan2(-coef[1::2], coef[0::2]), np.pi).ravel()
    assert ks_uniform(phases, 0.0, np.pi) < 0.08


def ks_uniform(values, low, high) -> float:
    """Kolmogorov-Smirnov distance between ``values`` and the uniform distribution on [low, high]."""
    u = np.sort((np.asarray(values) - low) / (high - low))
    n = len(u)
    return float(max((np.arange(1, n + 1) / n - u).max(), (u - np.arange(n) / n).max()))


def test_shift_and_noise_draw_each_example_independently_over_their_ranges():
    """One peak band at -0 dB over a -100 dB floor: the peak's new band is the shift, the new floor
    gives the SNR. Over 2,000 examples each is uniform over its range, and the two are unrelated."""
    n, bands = 2000, 64
    x = np.full((n, 2, bands, 1), -100.0, np.float32)
    x[:, :, 32, 0] = 0.0
    out, _ = augment.batch_augmenter(settings(mel_shift=2, noise_snr_db=[10, 30]))(tf.constant(x), tf.zeros(n), SEED)
    out = out.numpy()[:, 0, :, 0]
    shift = out.argmax(axis=1) - 32
    mean_db = 10 * np.log10((1 + (bands - 1) * 1e-10) / bands)
    snr = mean_db - out.min(axis=1)  # the floor, flat over the bands
    assert set(shift) == {-2, -1, 0, 1, 2} and max(abs(np.mean(shift == s) - 0.2) for s in range(-2, 3)) < 0.04
    assert snr.min() >= 10 - 0.01 and snr.max() <= 30 + 0.01 and ks_uniform(snr, 10, 30) < 0.05
    assert abs(np.corrcoef(shift, snr)[0, 1]) < 0.1
