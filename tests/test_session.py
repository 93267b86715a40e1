"""A notebook's session: run folder records, shared split, clear errors for missing steps."""

import json

import numpy as np
import pytest

from skinlib import session
from skinlib.rundir import MissingArtifactError


@pytest.fixture(scope="module")
def smoke_session(tmp_path_factory):
    return session.start("smoke", None, str(tmp_path_factory.mktemp("run")), quiet=True)


def test_session_records_environment_and_split(smoke_session):
    s = smoke_session
    env = json.loads((s.run.logs / "environment.json").read_text())
    assert env["versions"]["tensorflow"] and env["profile"]["name"] == "smoke"
    assert len(env["catalog_sha256"]) == 64 and env["n_images"] == len(s.catalog)
    assert s.run.splits_csv.exists()
    assert set(s.catalog["split"]) == {"train", "val", "test"}
    sizes = {k: len(s.frame(k)) for k in ("train", "val", "test")}
    assert sum(sizes.values()) == len(s.catalog) and len(s.frame("trainval")) == \
        sizes["train"] + sizes["val"]
    train = s.frame("train")
    assert s.priors() == pytest.approx([(train["label"] == c).mean() for c in range(s.n_classes)],
                                       rel=1e-12)


def test_same_seed_same_split_bytes(smoke_session, tmp_path):
    again = session.start("smoke", None, str(tmp_path), quiet=True)
    assert again.run.splits_csv.read_bytes() == smoke_session.run.splits_csv.read_bytes()
    assert session.catalog_hash(again.catalog) == session.catalog_hash(smoke_session.catalog)


def test_missing_artifact_names_the_notebook(smoke_session):
    with pytest.raises(MissingArtifactError, match="03_dcgan_minority.*--profile smoke --only 03"):
        smoke_session.require("models/gan/mel/generator.keras", "03_dcgan_minority")


def test_unknown_override_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown profile field"):
        session.start("smoke", None, str(tmp_path), {"epoch": 3}, quiet=True)


@pytest.mark.slow
def test_smoke_training_is_reproducible(smoke_session, tmp_path):
    """Same seed, same data, CPU: the smoke baseline gives the same test metrics twice."""
    from skinlib import evaluation, training

    results = []
    for i in range(2):
        s = session.start("smoke", None, str(tmp_path / f"r{i}"), quiet=True)
        model, rec = training.cnn.train_cnn(s, "m", epochs=2, verbose=0)
        res, _ = evaluation.evaluate_model(s, model, name="m", image_size=s.profile.image_size,
                                           train_seconds=0, n_train=0, write=False)
        results.append(res)
    for key in ("accuracy", "balanced_accuracy", "macro_auc", "confusion_matrix"):
        assert results[0][key] == results[1][key], key


@pytest.mark.slow
def test_seed_repeats_train_name_and_save_every_seed(tmp_path):
    """train_cnn_seeds: seed r is named m_s<r> and seeded profile.seed + 1000 r; evaluate_seeds
    saves every seed's test probabilities and lists each seed's figures beside the first's."""
    from skinlib import evaluation, training

    s = session.start("smoke", None, str(tmp_path), quiet=True)
    runs = training.cnn.train_cnn_seeds(s, "m", repeats=2, epochs=1, verbose=0)
    assert [rec["seed"] for _, rec in runs] == [s.profile.seed, s.profile.seed + 1000]
    assert [rec["name"] for _, rec in runs] == ["m", "m_s1"]
    assert all(rec["epochs_max"] == 1 and rec["images_seen"] == len(s.frame("train"))
               for _, rec in runs)
    res, probs = evaluation.evaluate_seeds(s, runs, name="m", image_size=s.profile.image_size,
                                           n_train=len(s.frame("train")))
    assert res["repeats"] == 2 and res["seeds"]["seed"] == [42, 1042]
    assert not np.allclose(probs[0], probs[1])  # two seeds, two models
    again = evaluation.load_seed_probs(s, "m", "02", 2)
    np.testing.assert_allclose(again[1], probs[1])
    with pytest.raises(MissingArtifactError, match="02_baseline_cnn"):
        evaluation.load_seed_probs(s, "m", "02", 3)
