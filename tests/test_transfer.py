"""ResNet50 transfer model: build without downloads, stage trainability, weights errors, reload."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from skinlib import pretrained  # noqa: E402
from skinlib.training import fit  # noqa: E402
from skinlib.training import transfer as train_transfer  # noqa: E402
from skinlib.models import transfer  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return transfer.build_resnet50((32, 32), 7, weights=None, mixed_precision=False)


def test_builds_flat_with_preprocessing_inside(model):
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 7)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat graph
    names = [layer.name for layer in model.layers]
    for name in ("resnet50_preprocess", "conv5_block3_out", "head_gap", "head_bn", "head_dense",
                 "head_drop", "probs"):
        assert name in names
    pre = keras.Model(model.inputs, model.get_layer("resnet50_preprocess").output)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = keras.applications.resnet50.preprocess_input(x.copy())
    np.testing.assert_allclose(pre(x).numpy(), expected, atol=1e-4)
    assert model.get_layer("head_drop").rate == pytest.approx(0.4)
    assert model.get_layer("head_dense").units == 256


def test_stage_trainability(model):
    base = transfer.base_layers(model)
    head = ["head_bn", "head_dense", "probs"]
    transfer.set_stage(model, 1)
    assert not any(layer.trainable for layer in base)
    assert all(model.get_layer(n).trainable for n in head)
    assert not model.get_layer("resnet50_preprocess").trainable
    transfer.set_stage(model, 2, unfreeze_from=100)
    ref_names = [layer.name for layer in
                 keras.applications.ResNet50(include_top=False, weights=None,
                                             input_shape=(32, 32, 3)).layers]
    for layer in base:
        i = ref_names.index(layer.name)  # index as in ResNet50(include_top=False).layers
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (i >= 100 and not is_bn), (layer.name, i)
    assert any(layer.trainable for layer in base)
    assert not model.get_layer("resnet50_preprocess").trainable
    n_frozen_weights = len(model.non_trainable_weights)
    transfer.set_stage(model, 1)
    assert len(model.non_trainable_weights) > n_frozen_weights
    with pytest.raises(ValueError, match="stage"):
        transfer.set_stage(model, 3)


def test_checkpoint_reloads_in_safe_mode_and_predicts_the_same(model, tmp_path):
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_one_stage_step_trains_only_the_head(model):
    transfer.set_stage(model, 1)
    fit.compile_model(model, 1e-3)
    before = {w.path: w.numpy().copy() for w in model.weights}
    x = np.random.default_rng(2).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.train_on_batch(x, np.arange(8) % 7)
    changed = {w.path for w in model.trainable_weights
               if not np.allclose(before[w.path], w.numpy())}
    assert changed and all(p.startswith(("head_", "probs")) for p in changed)
    assert np.allclose(before["conv1_conv/kernel"], model.get_layer("conv1_conv").kernel.numpy())


def _bn_layers(model):
    return [layer for layer in transfer.base_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)]


def test_from_scratch_every_layer_trains_and_batchnorm_learns_its_statistics():
    model = transfer.build_resnet50((32, 32), 7, weights=None, mixed_precision=False)
    assert model.name == "resnet50_scratch"
    weighted = [layer for layer in model.layers if layer.weights]
    assert all(layer.trainable for layer in weighted if layer.name != transfer.PREPROCESS_LAYER)
    assert not model.get_layer(transfer.PREPROCESS_LAYER).trainable
    assert len(model.non_trainable_weights) == 2 + 2 * (len(_bn_layers(model)) + 1)  # pre, BN stats
    bns = _bn_layers(model)
    before = {layer.name: layer.moving_mean.numpy().copy() for layer in bns}
    fit.compile_model(model, 1e-3)
    x = np.random.default_rng(3).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(8) % 7, epochs=1, batch_size=8, verbose=0)
    moved = [layer.name for layer in bns
             if not np.allclose(before[layer.name], layer.moving_mean.numpy())]
    assert moved == [layer.name for layer in bns]  # every BatchNorm ran in training mode
    assert not np.allclose(before["conv1_bn"], model.get_layer("conv1_bn").moving_mean.numpy())


def test_with_pretrained_weights_stage_one_freezes_the_base(monkeypatch):
    loaded = []
    monkeypatch.setattr(transfer, "_load_base_weights", lambda m, w, size: loaded.append(w))
    model = transfer.build_resnet50((32, 32), 7, weights="imagenet", mixed_precision=False)
    assert loaded == ["imagenet"] and model.name == "resnet50_transfer"
    assert not any(layer.trainable for layer in transfer.base_layers(model))
    bn = model.get_layer("conv1_bn")
    before = bn.moving_mean.numpy().copy()
    fit.compile_model(model, 1e-3)
    x = np.random.default_rng(4).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(8) % 7, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(before, bn.moving_mean.numpy())  # frozen: inference mode


class _Session:
    """Just what train_transfer reads from a session."""

    def __init__(self, profile):
        import pandas as pd

        self.profile, self.n_classes, self.run, self.force = profile, 7, None, False
        self._frame = pd.DataFrame({"label": np.arange(14) % 7})

    def frame(self, split):
        return self._frame


@pytest.mark.parametrize("weights", [None, "imagenet"])
def test_train_transfer_stages(monkeypatch, weights):
    from skinlib.config import get_profile

    calls = []

    def fake_fit(model, *, name, epochs, learning_rate, **kw):
        base = transfer.base_layers(model)
        calls.append((name, epochs, learning_rate, sum(layer.trainable for layer in base)))
        return model, {"name": name, "epochs_run": epochs}

    monkeypatch.setattr(train_transfer, "fit", fake_fit)
    monkeypatch.setattr(train_transfer, "training_inputs",
                        lambda *a, **k: fit.TrainingInputs(None, None, None, None))
    monkeypatch.setattr(transfer, "_load_base_weights", lambda *a: None)
    p = get_profile("smoke", transfer_epochs_stage1=2, transfer_epochs_stage2=3)
    model, records = train_transfer.train_transfer(_Session(p), weights=weights)
    n_base = len(transfer.base_layers(model))
    if weights is None:
        assert calls == [("06_scratch", 5, 1e-3, n_base)] and list(records) == ["scratch"]
        assert train_transfer.model_name(weights) == "06_resnet50_scratch"
    else:
        assert [c[:3] for c in calls] == [("06_stage1", 2, 1e-3), ("06_stage2", 3, 1e-5)]
        assert calls[0][3] == 0 and 0 < calls[1][3] < n_base
        assert list(records) == ["stage1", "stage2"]
        assert train_transfer.model_name(weights) == "06_resnet50"
    calls.clear()  # the seeds of repeats_large: their own names, their own seeds
    seeds = train_transfer.train_transfer_seeds(_Session(p), repeats=2, weights=weights)
    names = [c[0] for c in calls]
    assert names == (["06_scratch", "06_scratch_s1"] if weights is None else
                     ["06_stage1", "06_stage2", "06_stage1_s1", "06_stage2_s1"])
    assert [train_transfer.combined_record(recs)["seed"] for _, recs in seeds] == [
        p.seed, p.seed + 1000]


def test_resolve_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(transfer.WEIGHTS_ENV, raising=False)
    assert transfer.resolve_weights(None) is None
    assert transfer.resolve_weights("none") is None
    assert transfer.resolve_weights("imagenet") == "imagenet"
    assert transfer.resolve_weights("imagenet", {"transfer_weights": None}) is None
    f = tmp_path / "w.h5"
    f.write_bytes(b"x")
    assert transfer.resolve_weights(str(f)) == str(f)
    monkeypatch.setenv(transfer.WEIGHTS_ENV, str(f))
    assert transfer.resolve_weights("imagenet") == str(f)
    monkeypatch.setenv(transfer.WEIGHTS_ENV, str(tmp_path / "missing.h5"))
    with pytest.raises(transfer.WeightsError, match=transfer.WEIGHTS_ENV):
        transfer.resolve_weights("imagenet")
    with pytest.raises(transfer.WeightsError, match="transfer_weights=None"):
        transfer.resolve_weights(str(tmp_path / "nope.h5"))


def test_imagenet_without_internet_fails_fast_with_one_clear_line(monkeypatch):
    monkeypatch.setattr(pretrained, "available", lambda filename, timeout=3.0: False)
    with pytest.raises(transfer.WeightsError) as err:
        transfer.build_resnet50((32, 32), 7, weights="imagenet", mixed_precision=False)
    text = str(err.value)
    assert "\n" not in text
    assert transfer.WEIGHTS_ENV in text and "transfer_weights=none" in text


def test_can_download_asks_the_weights_host_with_the_timeout(monkeypatch):
    calls = []

    class Answered:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def answers(address, timeout):
        calls.append((address, timeout))
        return Answered()

    def refuses(address, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(pretrained.socket, "create_connection", answers)
    assert pretrained.can_download(timeout=1.5) is True
    assert calls == [((pretrained.HOST, 443), 1.5)]
    monkeypatch.setattr(pretrained.socket, "create_connection", refuses)
    assert pretrained.can_download(timeout=1.5) is False


def test_local_weights_file_is_loaded(tmp_path):
    ref = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "resnet50_notop.weights.h5"
    ref.save_weights(path)
    m = transfer.build_resnet50((32, 32), 7, weights=str(path), mixed_precision=False)
    np.testing.assert_array_equal(m.get_layer("conv1_conv").kernel.numpy(),
                                  ref.get_layer("conv1_conv").kernel.numpy())
    np.testing.assert_array_equal(m.get_layer("conv5_block3_3_bn").moving_variance.numpy(),
                                  ref.get_layer("conv5_block3_3_bn").moving_variance.numpy())


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="32x32"):
        transfer.build_resnet50((24, 32), 7, weights=None)
