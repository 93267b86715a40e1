"""DCGAN builders, DiffAugment, one training step, checkpoint resume after an interruption."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from skinlib import gan
from skinlib.training import gan as gan_training
from skinlib.models import dcgan


def test_generator_shape_and_range():
    g = dcgan.build_generator(16, latent_dim=8, filters=16)
    out = g.predict(np.random.default_rng(0).normal(size=(3, 8)) * 10, verbose=0)
    assert out.shape == (3, 16, 16, 3)
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_generator_refuses_bad_size():
    with pytest.raises(ValueError, match="power of two"):
        dcgan.build_generator(48)


def test_discriminator_is_linear_with_size_agnostic_trunk():
    d = dcgan.build_discriminator(16, filters=16)
    assert d.output_shape == (None, 1)
    names = [layer.name for layer in d.layers]
    assert names[-3:] == ["disc_features", "flatten", "logit"]
    assert not any(isinstance(layer, keras.Model) for layer in d.layers)
    # the trunk up to disc_features runs on a 48x64 image
    x = keras.Input((48, 64, 3))
    y = x
    for layer in d.layers[1:names.index("disc_features") + 1]:
        y = layer(y)
    assert keras.Model(x, y).output_shape == (None, 12, 16, 16)  # two stride-2 blocks


def test_diffaugment_changes_images_and_keeps_gradients():
    import tensorflow as tf

    seed = keras.random.SeedGenerator(1)
    x = tf.Variable(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        y = dcgan.diff_augment(x, dcgan.parse_policy(True), seed)
        loss = tf.reduce_sum(y)
    assert y.shape == x.shape
    assert not np.allclose(y.numpy(), x.numpy())
    assert tape.gradient(loss, x) is not None
    assert dcgan.parse_policy(False) == ()
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        dcgan.parse_policy("colour")


def test_one_train_step_changes_both_networks():
    g, d = dcgan.build_generator(16, 8, 16), dcgan.build_discriminator(16, 16)
    model = dcgan.DCGAN(g, d, 8, diffaugment=True, seed=0)
    model.compile(run_eagerly=True)
    g0, d0 = [w.numpy().copy() for w in g.weights], [w.numpy().copy() for w in d.weights]
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    hist = model.fit(x, batch_size=4, epochs=1, verbose=0)
    assert set(hist.history) >= {"d_loss", "g_loss", "d_real", "d_fake"}
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(g0, g.weights))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(d0, d.weights))


class _Interrupt(keras.callbacks.Callback):
    """Stops training like a killed process, right after the first checkpoint."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated interruption")


def _restored(folder, filters: int = 16):
    """A fresh tiny GAN with the last checkpoint of ``folder`` loaded, and its step."""
    g, d = dcgan.build_generator(16, 8, filters), dcgan.build_discriminator(16, filters)
    model = dcgan.DCGAN(g, d, 8, diffaugment=True, seed=0)
    model.compile(run_eagerly=True)
    return model, gan_training._restore(gan_training._checkpoints(model, folder))


def test_resume_continues_from_checkpoint(tmp_path, tensorboard_scalars):
    images = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    kw = dict(size=16, latent_dim=8, steps=6, checkpoint_every=2, batch_size=4, filters=16,
              run_eagerly=True)
    kw["log_dir"] = tmp_path / "tensorboard"
    with pytest.raises(KeyboardInterrupt):
        gan_training.train_gan(images, tmp_path, callbacks=[_Interrupt()], **kw)
    assert not (tmp_path / "generator.keras").exists()
    at_2, step = _restored(tmp_path)
    assert step == 2
    record = gan_training.train_gan(images, tmp_path, **kw)
    assert record["resumed_from"] == 2 and record["epochs_run_now"] == 2
    losses = gan_losses(tmp_path)
    assert list(losses["step"]) == [2, 4, 6]
    logged = tensorboard_scalars(tmp_path / "tensorboard")  # against the step, resume included
    assert [s for s, _ in logged["d_loss"]] == [2, 4, 6]
    assert [v for _, v in logged["g_loss"]] == pytest.approx(list(losses["g_loss"]), rel=1e-6)
    # the last checkpoint holds the final networks, optimizers and seed state
    at_6, step = _restored(tmp_path)
    g = keras.models.load_model(tmp_path / "generator.keras")
    assert step == 6 and int(at_6.g_optimizer.iterations.numpy()) == 6
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(at_6.generator.weights,
                                                                    g.weights))
    assert not np.array_equal(at_6.generator.weights[0].numpy(), at_2.generator.weights[0].numpy())
    assert not np.array_equal(at_6.seed_generator.state.numpy(), at_2.seed_generator.state.numpy())
    with pytest.raises(ValueError, match="another size, latent_dim or filters"):
        _restored(tmp_path, filters=32)
    # a finished GAN is loaded, not retrained; the saved models load without custom objects
    assert gan_training.train_gan(images, tmp_path, **kw)["loaded"] is True
    d = keras.models.load_model(tmp_path / "discriminator.keras")
    fake = gan.generate(None, "x", 5, seed=1, generator=g)
    assert fake.dtype == np.uint8 and fake.shape == (5, 16, 16, 3)
    assert d.predict(gan.to_unit(fake), verbose=0).shape == (5, 1)


def gan_losses(folder):
    import pandas as pd

    return pd.read_csv(folder / "losses.csv")
