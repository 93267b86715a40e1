"""The one ``fit``: class weights, schedules, training inputs, resume after a kill, "done" runs
are not retrained, stage histories."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from skinlib.rundir import RunDir
from skinlib.training import fit

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np, keras, tensorflow as tf
    from skinlib.training import fit
    from skinlib.models.cnn import build_cnn
    from skinlib.rundir import RunDir

    run = RunDir(sys.argv[1]).ensure()
    epochs, pause = int(sys.argv[2]), float(sys.argv[3])
    fit.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, 16, 16, 3)).astype("float32"); y = rng.integers(0, 3, 64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    slow = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: time.sleep(pause))
    model = build_cnn((16, 16), 3, arch="gap")
    orig = fit.callbacks
    fit.callbacks = lambda *a, **k: orig(*a, **k) + [slow]
    model, rec = fit.fit(model, ds, ds, run=run, name="tiny", epochs=epochs, patience=99,
                         schedule="none", verbose=0)
    print("RECORD", rec["epochs_run"], rec["resumed"], rec["loaded"])
""")


def _run(tmp_path, epochs, pause, **kw):
    script = tmp_path / "fit_tiny.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(epochs),
                             str(pause)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, **kw)


def test_class_weights_balanced():
    w = fit.class_weights([0, 0, 0, 1, 2, 2], 4)
    assert w == pytest.approx({0: 6 / 9, 1: 2.0, 2: 1.0})
    assert 3 not in w  # absent class gets no weight instead of a division by zero
    labels = np.random.default_rng(0).integers(0, 7, 1000)
    counts = np.bincount(labels)
    by_hand = {c: len(labels) / (7 * counts[c]) for c in range(7)}
    assert fit.class_weights(labels, 7) == by_hand  # bit for bit the formula it replaced
    with pytest.raises(ValueError, match="0..3"):
        fit.class_weights([0, 4], 4)


def test_cosine_schedule_warms_up_then_decays():
    f = fit.cosine_lr(1e-3, epochs=10, steps_per_epoch=4, warmup=1)
    lrs = [float(f(step)) for step in range(41)]
    assert lrs[0] == 0.0 and lrs[2] == pytest.approx(0.5e-3)  # linear warm-up over epoch 0
    assert lrs[4] == pytest.approx(1e-3)  # the peak where the warm-up ends
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # then only down
    assert lrs[4 + 18] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # halfway: cos = 0
    assert lrs[40] == pytest.approx(1e-5)  # 1% of the peak after the last step


def test_epoch_steps_needs_a_known_length():
    import tensorflow as tf

    ds = tf.data.Dataset.range(10).batch(3)
    assert fit.epoch_steps(ds) == 4 and fit.epoch_steps(ds.repeat(), 7) == 7
    with pytest.raises(ValueError, match="steps_per_epoch"):
        fit.epoch_steps(ds.repeat())


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_epoch(tmp_path):
    proc = _run(tmp_path, epochs=8, pause=1.5)
    history = tmp_path / "run" / "logs" / "tiny_history.csv"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until at least 2 epochs are logged, then kill
        if history.exists() and len(history.read_text().strip().splitlines()) >= 3:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the training subprocess logged no epoch in 120 s: " + proc.stdout.read())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "logs" / "tiny_train.json").exists()  # not "done"
    done_before = len(history.read_text().strip().splitlines()) - 1
    out = _run(tmp_path, epochs=8, pause=0).communicate(timeout=300)[0]
    line = [ln for ln in out.splitlines() if ln.startswith("RECORD")]
    assert line, out
    _, epochs_run, resumed, loaded = line[0].split()
    assert resumed == "True" and loaded == "False"
    epochs_logged = [int(r.split(",")[0]) for r in history.read_text().splitlines()[1:]]
    assert epochs_logged[-1] == 7 and len(set(epochs_logged)) == 8
    assert len(epochs_logged) - done_before < 8  # it did not start again from epoch 0


def test_done_run_is_loaded_and_force_retrains(tmp_path, tensorboard_scalars):
    import tensorflow as tf

    from skinlib.models.cnn import build_cnn

    run = RunDir(tmp_path).ensure()
    rng = np.random.default_rng(0)
    ds = tf.data.Dataset.from_tensor_slices(
        (rng.uniform(0, 255, (32, 16, 16, 3)).astype("float32"), rng.integers(0, 2, 32))).batch(16)
    m1, r1 = fit.fit(build_cnn((16, 16), 2, arch="gap"), ds, ds, run=run, name="m", epochs=2,
                     patience=5, verbose=0)
    assert not r1["loaded"] and r1["epochs_run"] == 2
    assert json.loads((run.logs / "m_train.json").read_text())["epochs_run"] == 2
    m2, r2 = fit.fit(build_cnn((16, 16), 2, arch="gap"), ds, ds, run=run, name="m", epochs=2,
                     patience=5, verbose=0)
    assert r2["loaded"]
    x = next(iter(ds))[0]
    np.testing.assert_allclose(m1.predict(x, verbose=0), m2.predict(x, verbose=0), atol=1e-5)
    _, r3 = fit.fit(build_cnn((16, 16), 2, arch="gap"), ds, ds, run=run, name="m", epochs=1,
                    patience=5, verbose=0, force=True)
    assert not r3["loaded"] and r3["epochs_run"] == 1
    logged = tensorboard_scalars(fit.tensorboard_dir(run, "m") / "train")
    assert logged["epoch_loss"] == [  # the forced re-run's epoch only
        (0, pytest.approx(r3["history"]["loss"][0], rel=1e-6))]


def test_fit_writes_tensorboard_logs(tmp_path, tensorboard_scalars):
    import tensorflow as tf

    from skinlib.models.cnn import build_cnn

    run = RunDir(tmp_path).ensure()
    rng = np.random.default_rng(1)
    ds = tf.data.Dataset.from_tensor_slices(
        (rng.uniform(0, 255, (32, 16, 16, 3)).astype("float32"), rng.integers(0, 3, 32))).batch(16)
    _, rec = fit.fit(build_cnn((16, 16), 3, arch="gap"), ds, ds, run=run, name="tiny_tb",
                     epochs=3, patience=5, schedule="cosine", learning_rate=1e-3, verbose=0)
    folder = run.logs / "tensorboard" / "tiny_tb"
    assert list(folder.glob("train/events.out.tfevents.*"))
    train = tensorboard_scalars(folder / "train")
    val = tensorboard_scalars(folder / "validation")
    h = rec["history"]
    assert [s for s, _ in train["epoch_loss"]] == [0, 1, 2]
    assert [v for _, v in train["epoch_loss"]] == pytest.approx(h["loss"], rel=1e-6)
    assert [v for _, v in val["epoch_loss"]] == pytest.approx(h["val_loss"], rel=1e-6)
    schedule = fit.cosine_lr(1e-3, 3, steps_per_epoch=2)  # the rate after each epoch's 2 steps
    lrs = [float(schedule(2 * (e + 1))) for e in range(3)]
    assert [v for _, v in train["epoch_learning_rate"]] == pytest.approx(lrs, rel=1e-6)


def test_stage_history_numbers_epochs_across_stages():
    frame, boundary = fit.stage_history(
        [{"epoch": [0, 1], "loss": [2.0, 1.5], "val_loss": [2.1, 1.9]},
         {"epoch": [0, 1, 2], "loss": [1.2, 1.0, 0.9], "val_loss": [1.8, 1.7, 1.7]}])
    assert boundary == 2 and frame["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert frame["loss"].tolist() == [2.0, 1.5, 1.2, 1.0, 0.9]
    one, none = fit.stage_history([{"epoch": [0], "loss": [1.0]}, None, {}])
    assert none is None and one["loss"].tolist() == [1.0]


def test_training_inputs_follow_the_balance_mode(fake_root, tmp_path):
    from skinlib import session

    s = session.start("smoke", str(fake_root), str(tmp_path), quiet=True)
    tr, va = s.frame("train"), s.frame("val")
    weighted = fit.training_inputs(tr, s.profile, n_classes=s.n_classes, val_frame=va,
                                   balance="weights")
    assert weighted.class_weight == fit.class_weights(tr["label"], s.n_classes)
    assert weighted.steps_per_epoch is None
    n_batches = -(-len(tr) // s.profile.batch_size)
    assert sum(1 for _ in weighted.train_ds) == n_batches
    assert sum(len(y) for _, y in weighted.val_ds) == len(va)
    resampled = fit.training_inputs(tr, s.profile, n_classes=s.n_classes, val_frame=va,
                                    balance="resample", image_size=(16, 16))
    assert resampled.class_weight is None and resampled.steps_per_epoch == n_batches
    x, _ = next(iter(resampled.train_ds))
    assert tuple(x.shape[1:3]) == (16, 16)


def test_augmentation_goes_where_the_profile_says(fake_root, tmp_path, monkeypatch):
    """``augment_on``: the pipeline augments float32 batches on a CPU (auto), or the batches
    stay uint8 and ``fit`` augments inside the model; a bad value is named."""
    import keras

    from skinlib import session
    from skinlib.models.cnn import build_cnn
    from skinlib.pipeline import Augment

    s = session.start("smoke", str(fake_root), str(tmp_path / "run"), quiet=True)
    tr, va = s.frame("train"), s.frame("val")
    assert fit.augment_place(s.profile) == "pipeline"  # this machine has no GPU
    auto = fit.training_inputs(tr, s.profile, n_classes=s.n_classes, val_frame=va)
    assert auto.augment_seed is None and auto.train_ds.element_spec[0].dtype.name == "float32"
    p = s.profile.replace(augment_on="model")
    inputs = fit.training_inputs(tr, p, n_classes=s.n_classes, val_frame=va, seed=7)
    assert inputs.augment_seed == 7
    assert {ds.element_spec[0].dtype.name for ds in (inputs.train_ds, inputs.val_ds)} == {"uint8"}
    assert fit.augment_place(p.replace(augment=False)) == "pipeline"
    with pytest.raises(ValueError, match="augment_on='gpu'"):
        fit.augment_place(p.replace(augment_on="gpu"))
    model = build_cnn(tuple(p.image_size), s.n_classes, arch="gap1")
    trained = []
    spy = fit.trained_model
    monkeypatch.setattr(fit, "trained_model", lambda m, seed: trained.append(spy(m, seed)) or
                        trained[-1])
    model, rec = fit.fit(model, **inputs._asdict(), run=s.run, name="in_model", epochs=2,
                         patience=9, verbose=0)
    assert isinstance(trained[0].layers[1], Augment) and trained[0].layers[1].seed == 7
    saved = keras.models.load_model(s.run.models / "in_model.keras")
    assert rec["epochs_run"] == 2 and [type(x).__name__ for x in saved.layers][:2] == [
        "InputLayer", "Rescaling"]
    x, _ = next(iter(inputs.val_ds))
    np.testing.assert_allclose(saved.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_steps_per_execution_and_precision_on_a_cpu():
    """On a CPU: one step per call and float32 models (mixed precision measured slower there);
    ``build_scope(mixed=True)`` builds float16 compute with a float32 softmax."""
    from skinlib.models.cnn import build_cnn

    with fit.build_scope():
        plain = build_cnn((16, 16), 3, arch="gap1")
    with fit.build_scope(mixed=True):
        mixed = build_cnn((16, 16), 3, arch="gap1")
    assert fit.steps_per_execution(plain) == 1 and plain.dtype_policy.name == "float32"
    assert mixed.get_layer("block1_conv1").compute_dtype == "float16"
    assert mixed.output.dtype == "float32"
    import keras
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored
