"""skinlib.evaluation on a smoke session: lesion groups, temperature, repeats, pairwise
comparisons over seeds, and the training budget in every model dict."""

import json

import numpy as np
import pytest

from skinlib import ensemble, evaluation, metrics, session


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return session.start("smoke", None, str(tmp_path_factory.mktemp("run")), quiet=True)


def _probs(s, seed, signal=2.0):
    """Test probabilities that know the label a little (``signal``)."""
    rng = np.random.default_rng(seed)
    y = s.frame("test")["label"].to_numpy()
    logits = rng.normal(size=(len(y), s.n_classes))
    logits[np.arange(len(y)), y] += signal
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def test_model_dict_records_lesions_repeats_and_budget(smoke):
    record = {"epochs_run": 5, "epochs_max": 8, "images_seen": 1500, "train_seconds": 3.0}
    out = evaluation.evaluate_probs(smoke, _probs(smoke, 0), name="m", image_size=(24, 32),
                                    train_seconds=3.0, n_train=10, record=record, repeats=2)
    test = smoke.frame("test")
    assert out["bootstrap"] == {"unit": "lesion", "n": smoke.profile.n_bootstrap,
                                "n_units": test["lesion_id"].nunique(),
                                "seed": smoke.profile.seed}
    assert (out["epochs_run"], out["epochs_max"], out["images_seen"], out["repeats"]) == \
        (5, 8, 1500, 2)
    saved = json.loads((smoke.run.metrics / "m.json").read_text())
    assert saved["repeats"] == 2 and saved["bootstrap"]["unit"] == "lesion"
    bare = evaluation.evaluate_probs(smoke, _probs(smoke, 0), name="m", image_size=(24, 32),
                                     train_seconds=0, n_train=10, write=False)
    assert bare["epochs_run"] is None and bare["repeats"] == 1


def test_tempered_model_decides_as_the_untempered_one(smoke):
    """05_bma_ts and 05_bma: the same predicted classes under the profile's prior correction."""
    p = _probs(smoke, 1, signal=1.0)
    kw = dict(image_size=(24, 32), train_seconds=0, n_train=10, write=False)
    plain = evaluation.evaluate_probs(smoke, p, name="bma", **kw)
    for t in (0.4, 2.5):
        tempered = evaluation.evaluate_probs(smoke, ensemble.apply_temperature(p, t),
                                             name="bma_ts", temperature=t, **kw)
        assert tempered["decision"] == plain["decision"] == "prior_corrected"
        assert tempered["confusion_matrix"] == plain["confusion_matrix"]
        assert tempered["balanced_accuracy"] == plain["balanced_accuracy"]
        assert tempered["temperature"] == t


def _direct(s, probs_a, probs_b, decision_b):
    """metrics.compare of b against a prior-corrected a, on the session's test lesions."""
    test = s.frame("test")
    return metrics.compare(test["label"], probs_a, probs_b, s.classes, groups=test["lesion_id"],
                           decision_a="prior_corrected", decision_b=decision_b,
                           priors=s.priors(), n_bootstrap=s.profile.n_bootstrap,
                           seed=s.profile.seed)


def test_pairwise_over_seeds_and_its_printed_verdict(smoke):
    probs = {"base": [_probs(smoke, 10, 0.5), _probs(smoke, 11, 0.5)],
             "good": [_probs(smoke, 12, 4.0), _probs(smoke, 13, 4.0)],
             "one_seed": _probs(smoke, 14, 0.5)}
    comps = evaluation.pairwise(smoke, probs)
    assert list(comps) == ["good_vs_base", "one_seed_vs_base", "one_seed_vs_good"]
    c = comps["good_vs_base"]
    assert (c["a"], c["b"], c["repeats"], c["bootstrap"]["unit"]) == ("base", "good", 2, "lesion")
    direct = _direct(smoke, probs["base"], probs["good"], "prior_corrected")
    assert c["balanced_accuracy"] == direct["balanced_accuracy"]
    assert comps["one_seed_vs_base"]["repeats"] == 1  # as many seeds as both have
    ba = c["balanced_accuracy"]
    line = evaluation.verdict_line(c)
    assert line.startswith(f"good − base, balanced accuracy: {ba['diff']:+.3f} (95% CI")
    assert "lesion-level; 2 seed(s)" in line and line.endswith(
        {"better": "good is better than base", "worse": "good is worse than base"}.get(
            ba["verdict"], "good is not distinguishable from base"))
    table = evaluation.comparison_table(comps)
    assert len(table) == 6 and table.loc[("good_vs_base", "balanced_accuracy"), "seeds"] == 2
    assert table.loc[("good_vs_base", "macro_auc"), "verdict"] == c["macro_auc"]["verdict"]


def test_each_model_is_prior_corrected_with_the_priors_it_was_trained_under(smoke):
    from skinlib import decision

    probs = {"base": _probs(smoke, 20, 0.5), "weighted": _probs(smoke, 21, 0.5)}
    uniform = decision.training_priors(smoke.frame("train")["label"], smoke.n_classes, "weights")
    c = evaluation.pairwise(smoke, probs, priors={"weighted": uniform})["weighted_vs_base"]
    direct = _direct(smoke, probs["base"], probs["weighted"], "argmax")
    assert c["balanced_accuracy"] == direct["balanced_accuracy"]
    res = evaluation.evaluate_probs(smoke, probs["weighted"], name="w", image_size=(24, 32),
                                    train_seconds=0.0, n_train=1, write=False, priors=uniform)
    assert res["priors"] == pytest.approx(list(uniform))
    assert res["balanced_accuracy"] == pytest.approx(res["balanced_accuracy_argmax"])


def test_a_profile_that_balances_is_prior_corrected_once(tmp_path):
    weighted = session.start("smoke", None, str(tmp_path), overrides={"balance": "weights"},
                             quiet=True)
    np.testing.assert_allclose(evaluation.trained_under(weighted),
                               [1 / weighted.n_classes] * weighted.n_classes)
    res = evaluation.evaluate_probs(weighted, _probs(weighted, 5, 0.5), name="w",
                                    image_size=(24, 32), train_seconds=0.0, n_train=1,
                                    write=False)
    assert res["decision"] == "prior_corrected"
    assert res["balanced_accuracy"] == pytest.approx(res["balanced_accuracy_argmax"])
