"""Tests for skinlib.decision: priors, prior correction, thresholds, how a rule is recorded."""

import numpy as np
import pytest
from sklearn import metrics as skm
from test_metrics import CLASSES, K, fake

from skinlib import decision, metrics


def test_priors_are_the_label_frequencies():
    y = np.array([0, 0, 0, 2, 2, 1, 0, 2])
    np.testing.assert_array_equal(decision.priors(y, 4), [4 / 8, 1 / 8, 3 / 8, 0.0])
    with pytest.raises(ValueError, match="outside"):
        decision.priors([0, 5], 4)


def test_prior_correction_divides_by_the_priors():
    p = np.array([[0.6, 0.32, 0.08], [0.5, 0.1, 0.4], [0.2, 0.7, 0.1]])
    priors = np.array([0.8, 0.15, 0.05])
    # by hand: row 0 -> 0.75, 2.13, 1.6; row 1 -> 0.625, 0.667, 8; row 2 -> 0.25, 4.67, 2
    np.testing.assert_array_equal(decision.apply_decision(p, "prior_corrected", priors=priors),
                                  [1, 2, 1])
    np.testing.assert_array_equal(decision.apply_decision(p), [0, 0, 1])
    np.testing.assert_array_equal(
        decision.apply_decision(p, "thresholds", thresholds=1 / priors),
        decision.apply_decision(p, "prior_corrected", priors=priors))


def test_prior_correction_raises_balanced_accuracy():
    # the minority class gets systematically low probabilities: argmax almost never picks it
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.uniform(size=n) < 0.1).astype(int)
    score = np.clip(0.05 + 0.3 * y + rng.normal(0, 0.1, n), 0.01, 0.99)
    p = np.stack([1 - score, score], axis=1)
    priors = decision.priors(y, 2)
    assert priors == pytest.approx([np.mean(y == 0), np.mean(y == 1)])
    arg = metrics.evaluate(y, p, ["a", "b"], n_bootstrap=0)
    cor = metrics.evaluate(y, p, ["a", "b"], decision="prior_corrected", priors=priors,
                           n_bootstrap=0)
    assert cor["balanced_accuracy"] > arg["balanced_accuracy"] + 0.1
    assert cor["balanced_accuracy_argmax"] == pytest.approx(arg["balanced_accuracy"])
    assert cor["decision"] == "prior_corrected" and cor["priors"] == pytest.approx(priors)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fit_thresholds_never_worse_than_argmax(seed):
    y, p = fake(n=400, seed=seed, signal=1.0)
    t = decision.fit_thresholds(y, p, K)
    assert t.shape == (K,) and np.all(t > 0) and t.max() == 1.0
    fitted = skm.balanced_accuracy_score(y, decision.apply_decision(p, "thresholds", thresholds=t))
    assert fitted >= skm.balanced_accuracy_score(y, p.argmax(axis=1))
    np.testing.assert_array_equal(t, decision.fit_thresholds(y, p, K))  # deterministic


def test_rule_params_feed_evaluate_and_are_recorded():
    y, p = fake(n=300, seed=3)
    priors = decision.priors(y, K)
    assert decision.rule_params("argmax") == {"decision": "argmax"}
    params = decision.rule_params("prior_corrected", train_priors=priors)
    r = metrics.evaluate(y, p, CLASSES, n_bootstrap=0, **params)
    pred = (p / priors).argmax(axis=1)
    assert r["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert r["decision"] == "prior_corrected" and r["priors"] == priors.tolist()
    th = decision.rule_params("thresholds", y_val=y, probs_val=p)
    np.testing.assert_array_equal(th["thresholds"], decision.fit_thresholds(y, p, K))
    r = metrics.evaluate(y, p, CLASSES, n_bootstrap=0, **th)
    assert r["thresholds"] == th["thresholds"].tolist() and "priors" not in r
    assert decision.record("argmax", priors=priors) == {"decision": "argmax"}


def test_rules_refuse_missing_inputs():
    y, p = fake(n=50)
    with pytest.raises(ValueError, match="needs the training priors"):
        decision.rule_params("prior_corrected")
    with pytest.raises(ValueError, match="validation labels and probabilities"):
        decision.rule_params("thresholds", probs_val=p)
    with pytest.raises(ValueError, match="use one of"):
        decision.rule_params("vote")
    with pytest.raises(ValueError, match="must be finite and > 0"):
        decision.apply_decision(p, "prior_corrected", priors=np.zeros(K))
    with pytest.raises(ValueError, match="needs priors"):
        decision.apply_decision(p, "prior_corrected")


def test_comparison_rule_replaces_thresholds_by_argmax():
    assert [decision.comparison_rule(d) for d in decision.DECISIONS] == \
        ["argmax", "prior_corrected", "argmax"]
    with pytest.raises(ValueError, match="use one of"):
        decision.comparison_rule("vote")


@pytest.mark.parametrize("temperature", [0.3, 0.6, 1.7, 4.0])
def test_temperature_never_changes_a_predicted_class(temperature):
    """Under every rule, the tempered model (probabilities softmax(log p / T), the rule told T)
    predicts exactly what the untempered one does; evaluate's figures under the rule agree."""
    from skinlib import ensemble

    y, p = fake(n=800, seed=5, signal=1.0)
    tempered = ensemble.apply_temperature(p, temperature)
    priors = decision.priors(y, K)
    for rule in decision.DECISIONS:
        params = decision.rule_params(rule, train_priors=priors, y_val=y, probs_val=p)
        tparams = decision.rule_params(rule, train_priors=priors, y_val=y, probs_val=tempered,
                                       temperature=temperature)
        assert tparams["temperature"] == temperature
        np.testing.assert_allclose(tparams.get("thresholds", 1.0), params.get("thresholds", 1.0))
        base = decision.apply_decision(p, **params)
        np.testing.assert_array_equal(decision.apply_decision(tempered, **tparams), base)
        a = metrics.evaluate(y, p, CLASSES, n_bootstrap=0, **params)
        b = metrics.evaluate(y, tempered, CLASSES, n_bootstrap=0, **tparams)
        assert b["confusion_matrix"] == a["confusion_matrix"], rule
        assert b["balanced_accuracy"] == a["balanced_accuracy"] and b["temperature"] == temperature
        assert b["balanced_accuracy_argmax"] == a["balanced_accuracy_argmax"]
    # the data can tell: told nothing, prior correction of tempered probabilities moves classes
    moved = decision.apply_decision(tempered, "prior_corrected", priors=priors)
    assert (moved != decision.apply_decision(p, "prior_corrected", priors=priors)).any()


def test_balanced_training_is_corrected_once():
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    np.testing.assert_allclose(decision.training_priors(labels, 3), [0.8, 0.15, 0.05])
    for balance in ("weights", "resample"):
        uniform = decision.training_priors(labels, 3, balance)
        np.testing.assert_allclose(uniform, [1 / 3] * 3)
        probs = np.random.default_rng(0).dirichlet(np.ones(3), 50)
        np.testing.assert_array_equal(  # prior correction to uniform priors is argmax
            decision.apply_decision(probs, "prior_corrected", priors=uniform), probs.argmax(1))
    with pytest.raises(ValueError, match="balance='smote'"):
        decision.training_priors(labels, 3, "smote")
