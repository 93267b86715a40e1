"""A tiny run folder for predict/monitor tests: the smoke catalog and split, a small CNN
trained for a few epochs in-test, evaluated by the one evaluation path (metrics JSON + card)."""

from __future__ import annotations

from pathlib import Path

NAME = "02_tiny"


def make_tiny_run(root: Path):
    """Train, save and evaluate a tiny CNN in ``root``; return the session."""
    from skinlib import evaluation, pipeline, session
    from skinlib.models.cnn import build_cnn
    from skinlib.training.fit import compile_model, set_seed

    s = session.start("smoke", None, str(root), quiet=True)
    size = s.profile.image_size
    set_seed(s.profile.seed, deterministic=True)
    x, y = pipeline.load_array(s.frame("train"), size)
    model = build_cnn(size, s.n_classes, arch="gap")
    compile_model(model, 3e-3)
    model.fit(x.astype("float32"), y, epochs=6, batch_size=32, verbose=0, shuffle=True)
    model.save(s.run.models / f"{NAME}.keras")
    evaluation.evaluate_model(s, model, name=NAME, image_size=size, train_seconds=0,
                              n_train=len(x))
    return s
