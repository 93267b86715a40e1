"""The model card: what a saved model needs beside its weights to be the model that was tested.

A card holds the classes, the input size, the decision rule with its priors or thresholds, the
temperature where one was fitted, the training data (catalog hash, source, split seed), the
profile, the headline test metrics with their CIs, and the input check's threshold; the input
check's reference (the validation images' embeddings, statistics and probabilities) is an npz
beside it. :func:`save` writes both when a model is evaluated on the test split
(:func:`skinlib.evaluation.evaluate_model`), through :meth:`skinlib.rundir.RunDir.write_card`.

The card lies **beside** the archive (``models/<name>.card.json``), not inside the ``.keras``
zip: it is made when the model is evaluated, after training saved the archive, and a finished
training run is recognised by that archive (rewriting it would touch the file the trainer and
later notebooks load, and Keras offers no supported place for extra entries); as JSON beside
the model it is readable without TensorFlow and written like every other run-folder JSON. The
card records the archive's SHA-256, so a card that does not belong to a model is detected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinlib import decision, image_cache, info

CARD_VERSION = 1
HEADLINE = ("balanced_accuracy", "balanced_accuracy_argmax", "macro_auc", "accuracy",
            "macro_f1", "ece", "mel_sensitivity_at_spec80")


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ModelCard:
    """A model's rule, calibration and input check, read from its card (or argmax without)."""

    classes: list
    rule: dict = field(default_factory=lambda: {"decision": "argmax"})
    temperature: float | None = None
    training_priors: list | None = None
    check: object = None  # skinlib.monitor.InputCheck, None without a reference
    reference: object = None  # skinlib.monitor.Features of the validation images
    data: dict | None = None  # the card JSON; None when the model has none
    # how the model's training images were resized (skinlib.image_cache.RESIZE_METHODS):
    # predict resizes new images the same way
    resize: str = image_cache.DEFAULT_RESIZE

    @property
    def known(self) -> bool:
        """Whether the model came with a card."""
        return self.data is not None

    def decide(self, probs) -> np.ndarray:
        """Decided classes under the card's rule, from the *uncalibrated* probabilities
        (calibration never changes a decision)."""
        return decision.apply_recorded(probs, self.rule)

    def calibrate(self, probs) -> np.ndarray:
        """Probabilities scaled by the card's temperature (unchanged without one)."""
        from skinlib.ensemble import apply_temperature

        p = np.asarray(probs, np.float64)
        return p if self.temperature in (None, 1.0) else apply_temperature(p, self.temperature)

    def describe(self) -> str:
        """One line: the rule, the temperature and the input check."""
        t = f"temperature {self.temperature:.3g}" if self.temperature else "no temperature"
        chk = (f"input check threshold {self.check.threshold:.1f}" if self.check is not None
               else "no input check")
        return f"rule {self.rule['decision']}, {t}, {chk}" + ("" if self.known else " (no card)")


def _rule(result: dict) -> dict:
    """The decision rule a metrics dict records (``decision`` and its priors/thresholds)."""
    return {k: result[k] for k in ("decision", "priors", "thresholds") if k in result}


def build(session, model, result: dict, name: str) -> tuple[dict, dict]:
    """The card JSON and the reference arrays of a model just evaluated on the test split.

    Args:
        session: the notebook's session (catalog, split, profile, run folder).
        model: the Keras model (its embeddings of the validation images are the reference).
        result: the metrics dict :func:`skinlib.evaluation.evaluate_probs` returned.
        name: the model's name (``models/<name>.keras``).
    """
    from skinlib import monitor
    from skinlib.splits import catalog_hash

    size, p, val = tuple(result["image_size"]), session.profile, session.frame("val")
    feats = monitor.features_from_files(model, val["path"].tolist(), size)
    check = monitor.InputCheck(feats.embeddings, feats.stats)
    path = session.run.models / f"{name}.keras"
    card = {
        "card_version": CARD_VERSION, "model": name,
        "model_file": path.name if path.exists() else None,
        "model_sha256": file_sha256(path) if path.exists() else None,
        "dataset": p.dataset, "classes": list(session.classes),
        "class_names": {c: info.class_names(p.dataset).get(c, c) for c in session.classes},
        "input_size": list(size),
        "resize": image_cache.DEFAULT_RESIZE,
        "input": "RGB in [0, 255], resized to input_size (area averaging; bilinear "
                 "where a side grows); the model rescales itself",
        "decision": _rule(result),
        "decision_applies_to": "the uncalibrated probabilities",
        "temperature": result.get("temperature"),
        "training_priors": session.priors(),
        "training_data": {"catalog_sha256": catalog_hash(session.catalog),
                          "source": result.get("data", session.data), "split_seed": p.seed,
                          "val_frac": p.val_frac, "test_frac": p.test_frac,
                          "n_train": result.get("n_train"), "n_val": len(val),
                          "n_test": result.get("n_test")},
        "profile": p.name,
        "test_metrics": {**{k: result.get(k) for k in HEADLINE},
                         "ci95": {k: v for k, v in result.get("ci95", {}).items() if k in HEADLINE},
                         "bootstrap": result.get("bootstrap") or {"n": result.get("n_bootstrap")}},
        "input_check": {**check.summary(), "reference_file": f"{name}.reference.npz",
                        "n_unreadable": len(feats.skipped)},
    }
    arrays = {"path": np.asarray([Path(q).name for q in feats.paths]),
              "embeddings": feats.embeddings, "probs": feats.probs, "stats": feats.stats,
              "stat_names": np.asarray(monitor.STATS)}
    return card, arrays


def save(session, model, result: dict, name: str) -> Path:
    """Write the card and its reference beside ``models/<name>.keras``; return the card's path."""
    card, arrays = build(session, model, result, name)
    return session.run.write_card(name, card, arrays)


def from_json(card: dict, arrays: dict | None) -> ModelCard:
    """A :class:`ModelCard` from a card JSON and its reference arrays."""
    from skinlib import monitor

    reference = check = None
    if arrays is not None:
        if list(arrays["stat_names"]) != list(monitor.STATS):
            raise ValueError(f"the reference of {card.get('model')} holds the statistics "
                             f"{list(arrays['stat_names'])}, this skinlib measures "
                             f"{list(monitor.STATS)}: re-run the notebook that evaluated it")
        reference = monitor.Features(list(arrays["path"]), arrays["embeddings"],
                                     arrays["probs"], arrays["stats"])
        ic = card.get("input_check", {})
        check = monitor.InputCheck(reference.embeddings, reference.stats, k=ic.get("k", 5),
                                   threshold=ic.get("threshold"),
                                   target=ic.get("false_alarm_target", 0.02))
    return ModelCard(classes=list(card["classes"]), rule=card["decision"],
                     temperature=card.get("temperature"),
                     training_priors=card.get("training_priors"),
                     check=check, reference=reference, data=card,
                     # cards written before the field existed: the antialiased resize of then
                     resize=card.get("resize", "antialias"))


def load(model_path, classes) -> tuple[ModelCard, str | None]:
    """The card beside a model file, and a one-line warning (None when all is well).

    Without a card the model still loads: argmax, no temperature, no input check.
    """
    from skinlib.rundir import card_paths, read_card

    card, arrays = read_card(model_path)
    if card is None:
        return ModelCard(classes=list(classes)), (
            f"warning: {model_path} has no model card ({card_paths(model_path)[0].name}): its "
            "decision rule is unknown, so argmax is used (and there is no input check)")
    warning = None
    if card.get("model_sha256") and card["model_sha256"] != file_sha256(model_path):
        warning = (f"warning: {card_paths(model_path)[0]} was written for another version of "
                   f"{Path(model_path).name} (SHA-256 differs): its rule may not fit this model")
    if list(card["classes"]) != list(classes):
        raise ValueError(f"{card_paths(model_path)[0]}: its classes {card['classes']} are not "
                         f"the model's {list(classes)}: the card belongs to another model")
    return from_json(card, arrays), warning
