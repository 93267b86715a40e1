"""Drift monitoring: is a new batch of images like the images a model was validated on?

What is compared, batch against reference (the validation split the model was chosen on):

- **input statistics** per image (:data:`STATS`: brightness, contrast, saturation, colour
  shares, sharpness, size), each by a two-sample Kolmogorov-Smirnov test;
- **the model's embedding** (the penultimate layer's output) by the maximum mean discrepancy
  with an RBF kernel and a permutation p-value: Rabanser et al. (2019), "Failing Loudly",
  found two-sample tests on a trained classifier's representation the most reliable;
- **the predicted-class mix** (under the model's decision rule) by a chi-square test of the
  2 x classes table. The expected mix is the one the model decides on the reference images,
  which were drawn with the training priors (a stratified split): the raw priors themselves
  are shown beside it but are not the null, because a rule that corrects for priors changes
  the decided mix on every batch, shifted or not;
- **confidence and entropy** of the calibrated probabilities, by KS tests.

The verdict rests on the model-side tests (:data:`VERDICT_TESTS`: the embedding MMD, the
class mix, confidence and entropy), combined with the Bonferroni correction: drift when
``min(p) * n < alpha`` over those ``n`` tests; the reported ``p_value`` is ``min(1, min(p) * n)``.
This is what Rabanser et al. found to work: tests on the classifier's representation and on its
outputs. The input statistics are reported beside them (each with its own Bonferroni flag over
the input tests) to say *what* changed, but do not decide: they are per-image numbers, and the
images of one lesion (or one session) are correlated, so their KS p-values run low on
in-distribution batches. Measured on HAM10000 (quick run, 20 test batches of 200 against the
validation images): with all 11 tests in the verdict 2 of 20 batches were false alarms at
alpha 0.05, both from the colour statistics; the model-side tests alone raised none.

The per-image **input check** of ``predict`` (:class:`InputCheck`) uses the same features: an
image's mean distance to its k nearest reference images, in the embedding and in the
standardised input statistics, as a percentile of the reference images' own (leave-one-out)
distances; flagged above a threshold chosen on the reference images.

Why an own MMD and not alibi-detect's ``MMDDrift``: alibi-detect 0.13.0 (the latest) requires
numpy<2, Pillow<11, tensorflow<2.19 with tf-keras, numba<0.60 and transformers, so it cannot
be installed beside this project's TensorFlow 2.21 / Keras 3 / NumPy 2. The unbiased MMD^2 with
a median-heuristic bandwidth and a permutation test is a dozen lines (:func:`mmd_test`), and
the KS and chi-square tests are SciPy's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.rundir import RunDir

# the tests the verdict rests on: the model's representation and outputs (see the docstring)
VERDICT_TESTS = ("embedding_mmd", "class_mix", "confidence", "entropy")
STATS = ("brightness", "contrast", "saturation", "red", "blue", "sharpness", "size")
CHECK_STATS = STATS[:6]  # the input check ignores the file's size: every image is resized
STATS_SIZE = (150, 200)  # (h, w) the statistics are measured at, whatever the file's size
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
MIN_BATCH = 10  # fewer readable images than this make no batch worth testing


# --------------------------------------------------------------------------------------------
# features of images: statistics, embeddings, probabilities
# --------------------------------------------------------------------------------------------

def image_stats(image) -> np.ndarray:
    """The :data:`STATS` of one uint8 RGB image ``(H, W, 3)``, measured on a 150x200 copy.

    brightness = mean luma, contrast = its standard deviation, saturation = mean HSV
    saturation (all in [0, 1]); red / blue = the channel's share of the summed channel means;
    sharpness = mean absolute Laplacian of the luma; size = the file's pixels in megapixels.
    """
    import cv2

    img = np.asarray(image)
    thumb = cv2.resize(img, STATS_SIZE[::-1], interpolation=cv2.INTER_AREA)
    rgb = thumb.astype(np.float32) / 255.0
    luma = rgb @ _LUMA
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    means = rgb.reshape(-1, 3).mean(axis=0)
    total = max(float(means.sum()), 1e-6)
    sharp = np.abs(cv2.Laplacian(luma, cv2.CV_32F)).mean()
    return np.array([luma.mean(), luma.std(), saturation.mean(), means[0] / total,
                     means[2] / total, sharp, img.shape[0] * img.shape[1] / 1e6])


def embedding_model(model):
    """``model`` with two outputs: the penultimate layer's output (the input of the final
    Dense) and the class probabilities."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"model {model.name!r} has no Dense classifier layer: no "
                         "penultimate embedding to monitor")
    return keras.Model(model.inputs, [dense[-1].input, model.outputs[0]])


@dataclass
class Features:
    """What monitoring and the input check read from a set of images (one row each)."""

    paths: list = field(default_factory=list)
    embeddings: np.ndarray = None
    probs: np.ndarray = None
    stats: np.ndarray = None
    skipped: list = field(default_factory=list)  # {"path", "problem"} of unreadable images

    def __len__(self) -> int:
        return 0 if self.probs is None else len(self.probs)

    def subset(self, rows) -> "Features":
        """The rows ``rows`` (indices or a boolean mask) as new Features (no skipped list)."""
        rows = np.asarray(rows)
        return Features([self.paths[i] for i in np.arange(len(self))[rows]],
                        self.embeddings[rows], self.probs[rows], self.stats[rows])


def concat(parts: list[Features]) -> Features:
    """Features of several chunks as one."""
    full = [p for p in parts if len(p)]
    if not full:
        return Features(skipped=[s for p in parts for s in p.skipped])
    return Features([q for p in full for q in p.paths],
                    np.concatenate([p.embeddings for p in full]),
                    np.concatenate([p.probs for p in full]),
                    np.concatenate([p.stats for p in full]),
                    [s for p in parts for s in p.skipped])


def features(model, images, size, *, paths=None, x=None, batch_size: int = 64,
             emb_model=None, resize: str | None = None) -> Features:
    """Embeddings, probabilities and statistics of uint8 RGB images of any size.

    Images are resized to ``size`` (h, w) as the model's training images were (``resize``: the
    card's method; :func:`skinlib.predict.resize_for_model`) unless ``x``, the resized batch,
    is given.
    """
    from skinlib.predict import resize_for_model

    images = list(images)
    if not images:
        return Features()
    emb_model = emb_model or embedding_model(model)
    if x is None:
        x = np.stack([resize_for_model(im, size, resize) for im in images])
    outs = [emb_model.predict_on_batch(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    emb, probs = (np.concatenate([o[j] for o in outs]) for j in (0, 1))
    return Features(list(paths) if paths is not None else [None] * len(images),
                    np.asarray(emb, np.float32).reshape(len(images), -1),
                    np.asarray(probs, np.float64), np.stack([image_stats(im) for im in images]))


def features_from_files(model, paths, size, *, chunk: int = 64, progress: bool = False,
                        resize: str | None = None) -> Features:
    """:func:`features` of image files, read in chunks; unreadable files are skipped and named."""
    from skinlib.predict import iter_chunks

    emb_model = embedding_model(model)
    parts = []
    for batch in iter_chunks(paths, chunk=chunk, progress=progress):
        part = features(model, batch.images, size, paths=batch.paths, emb_model=emb_model,
                        resize=resize)
        part.skipped = batch.failed
        parts.append(part)
    return concat(parts)


# --------------------------------------------------------------------------------------------
# the per-image input check
# --------------------------------------------------------------------------------------------

def _knn_distance(reference: np.ndarray, query: np.ndarray | None, k: int) -> np.ndarray:
    """Mean distance to the k nearest reference rows; ``query=None``: of every reference row
    to the others (leave-one-out)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + (query is None)).fit(reference)
    dist, _ = nn.kneighbors(reference if query is None else query)
    return (dist[:, 1:] if query is None else dist).mean(axis=1)


def _percentile(sorted_ref: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of the reference values below each value, in percent (0-100)."""
    return 100.0 * np.searchsorted(sorted_ref, values, side="left") / len(sorted_ref)


class InputCheck:
    """How unlike the reference (validation) images one image is, and whether to flag it.

    ``score`` = the larger of two percentiles: of the image's k-nearest-neighbour distance in
    the model's embedding, and in the standardised :data:`CHECK_STATS`, each among the
    reference images' own leave-one-out distances. An image is flagged when its score exceeds
    ``threshold``, chosen so that at most ``target`` of the reference images are flagged.
    """

    def __init__(self, embeddings, stats, *, k: int = 5, threshold: float | None = None,
                 target: float = 0.02):
        emb = np.asarray(embeddings, np.float64)
        if len(emb) < 3:
            raise ValueError(f"the input check needs at least 3 reference images, got {len(emb)}")
        self.k, self.target = int(min(k, len(emb) - 1)), float(target)
        st = np.asarray(stats, np.float64)[:, :len(CHECK_STATS)]
        self._mu, self._sd = st.mean(axis=0), np.maximum(st.std(axis=0), 1e-6)
        self._emb, self._st = emb, (st - self._mu) / self._sd
        d_emb, d_st = _knn_distance(self._emb, None, self.k), _knn_distance(self._st, None, self.k)
        self._ref = {"embedding": np.sort(d_emb), "stats": np.sort(d_st)}
        loo = np.maximum(_percentile(self._ref["embedding"], d_emb),
                         _percentile(self._ref["stats"], d_st))
        self.threshold = (float(np.quantile(loo, 1 - self.target, method="higher"))
                          if threshold is None else float(threshold))
        self.false_alarm_reference = float((loo > self.threshold).mean())

    def score(self, embeddings, stats) -> dict[str, np.ndarray]:
        """``score`` (0-100), ``embedding`` and ``stats`` percentiles and ``flagged`` per image."""
        emb = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
        st = (np.asarray(stats, np.float64)[:, :len(CHECK_STATS)] - self._mu) / self._sd
        pe = _percentile(self._ref["embedding"], _knn_distance(self._emb, emb, self.k))
        ps = _percentile(self._ref["stats"], _knn_distance(self._st, st, self.k))
        score = np.maximum(pe, ps)
        return {"score": score, "embedding": pe, "stats": ps, "flagged": score > self.threshold}

    def summary(self) -> dict:
        """What a model card records about the check."""
        return {"k": self.k, "threshold": self.threshold, "false_alarm_target": self.target,
                "false_alarm_reference": self.false_alarm_reference,
                "n_reference": len(self._emb), "stats": list(CHECK_STATS),
                "score": "max of the embedding and input-statistics kNN-distance percentiles "
                         "among the validation images (0-100)"}


# --------------------------------------------------------------------------------------------
# two-sample tests
# --------------------------------------------------------------------------------------------

def rbf_kernel(z) -> tuple[np.ndarray, float]:
    """RBF kernel matrix ``exp(-d^2 / (2 s^2))`` of the rows of ``z``, with ``s`` the median
    pairwise distance (the median heuristic); returns ``(K, s)``."""
    from sklearn.metrics.pairwise import euclidean_distances

    z = np.asarray(z, np.float64)
    d2 = euclidean_distances(z, squared=True)
    off = d2[np.triu_indices(len(z), 1)]
    positive = off[off > 1e-12]
    sigma = float(np.sqrt(np.median(positive))) if len(positive) else 1.0
    return np.exp(-d2 / (2.0 * sigma ** 2)), sigma


def mmd2_unbiased(kernel, in_x) -> np.ndarray:
    """Unbiased MMD^2 (Gretton et al. 2012) of the split of a pooled sample into x and y.

    Args:
        kernel: ``(N, N)`` kernel matrix of the pooled sample.
        in_x: ``(N,)`` or ``(N, P)`` booleans, True where a row belongs to x; with P columns,
            P splits at once (one matrix product for all permutations).

    Returns:
        One MMD^2 per split: mean k(x, x') over pairs i != j, plus the same for y, minus twice
        the mean k(x, y).
    """
    a = np.asarray(in_x, np.float64)
    a = a[:, None] if a.ndim == 1 else a
    k = np.asarray(kernel, np.float64)
    m = a.sum(axis=0)
    n = len(k) - m
    row, diag = k.sum(axis=1), np.diag(k)
    aka = (a * (k @ a)).sum(axis=0)
    akb = row @ a - aka
    bkb = row.sum() - aka - 2.0 * akb
    trace_a = diag @ a
    return ((aka - trace_a) / (m * (m - 1)) + (bkb - (diag.sum() - trace_a)) / (n * (n - 1))
            - 2.0 * akb / (m * n))


def mmd_test(x, y, *, n_perm: int = 2000, seed: int = 0, chunk: int = 250) -> dict:
    """Two-sample MMD test: unbiased MMD^2 with an RBF kernel (median heuristic) and a
    permutation p-value ``(1 + #{perm >= observed}) / (1 + n_perm)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"the MMD test needs at least 2 rows per sample, got {len(x)} and "
                         f"{len(y)}")
    kernel, sigma = rbf_kernel(np.vstack([x, y]))
    labels = np.arange(len(x) + len(y)) < len(x)
    observed = float(mmd2_unbiased(kernel, labels)[0])
    rng, exceed = np.random.default_rng(seed), 0
    for start in range(0, n_perm, chunk):
        perms = np.stack([rng.permutation(labels) for _ in range(min(chunk, n_perm - start))],
                         axis=1)
        exceed += int((mmd2_unbiased(kernel, perms) >= observed - 1e-15).sum())
    return {"statistic": observed, "p_value": (exceed + 1) / (n_perm + 1), "bandwidth": sigma,
            "n_permutations": int(n_perm)}


def ks_test(reference, batch) -> dict:
    """Two-sample Kolmogorov-Smirnov test with both means."""
    from scipy.stats import ks_2samp

    reference, batch = np.asarray(reference, np.float64), np.asarray(batch, np.float64)
    res = ks_2samp(reference, batch)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue),
            "reference_mean": float(reference.mean()), "batch_mean": float(batch.mean())}


def class_mix_test(reference_classes, batch_classes, n_classes: int) -> dict:
    """Chi-square test of the 2 x classes table of decided classes (classes never decided in
    either sample dropped), with both mixes as shares."""
    from scipy.stats import chi2_contingency

    table = np.stack([np.bincount(np.asarray(reference_classes, int), minlength=n_classes),
                      np.bincount(np.asarray(batch_classes, int), minlength=n_classes)])
    keep = table.sum(axis=0) > 0
    stat, p = (0.0, 1.0) if keep.sum() < 2 else chi2_contingency(table[:, keep])[:2]
    shares = table / table.sum(axis=1, keepdims=True)
    return {"statistic": float(stat), "p_value": float(p), "reference_mix": shares[0].tolist(),
            "batch_mix": shares[1].tolist()}


def entropy(probs) -> np.ndarray:
    """Shannon entropy (nats) of each row of class probabilities."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def compare(reference: Features, batch: Features, card, *, n_perm: int = 2000,
            alpha: float = 0.05, seed: int = 0, max_reference: int = 1000) -> dict:
    """Every test of a batch against the reference, and the Bonferroni verdict.

    Args:
        reference, batch: :class:`Features` (the reference: the validation images).
        card: the model's :class:`skinlib.card.ModelCard` (decision rule, temperature, priors).
        n_perm: permutations of the MMD test (its smallest p-value is 1 / (n_perm + 1)).
        alpha: family-wise level of the verdict.
        max_reference: reference images used (a random subset beyond it), to bound the cost.

    Returns:
        ``drift``, ``p_value`` (Bonferroni), ``alpha``, ``correction``, ``n_images``,
        ``n_skipped``, ``skipped``, ``n_reference`` and ``tests`` (name -> ``statistic``,
        ``p_value``, ``significant`` and the test's own numbers).
    """
    if len(batch) < MIN_BATCH:
        raise ValueError(f"only {len(batch)} readable image(s) in the batch: drift tests need at "
                         f"least {MIN_BATCH}")
    rng = np.random.default_rng(seed)
    ref = reference if len(reference) <= max_reference else reference.subset(
        np.sort(rng.choice(len(reference), max_reference, replace=False)))
    tests = {"embedding_mmd": mmd_test(ref.embeddings, batch.embeddings, n_perm=n_perm,
                                       seed=seed)}
    tests.update({name: ks_test(ref.stats[:, i], batch.stats[:, i])
                  for i, name in enumerate(STATS)})
    tests["class_mix"] = class_mix_test(card.decide(ref.probs), card.decide(batch.probs),
                                        len(card.classes))
    ref_p, batch_p = card.calibrate(ref.probs), card.calibrate(batch.probs)
    tests["confidence"] = ks_test(ref_p.max(axis=1), batch_p.max(axis=1))
    tests["entropy"] = ks_test(entropy(ref_p), entropy(batch_p))
    return {**verdict(tests, alpha), "n_images": len(batch), "n_skipped": len(batch.skipped),
            "skipped": list(batch.skipped), "n_reference": len(ref), "tests": tests}


def verdict(tests: dict[str, dict], alpha: float = 0.05, decide=None) -> dict:
    """Bonferroni over the deciding tests (``decide``, default :data:`VERDICT_TESTS`; all tests
    when none of them is present): ``drift``, ``p_value`` = min(1, n x smallest p of the n
    deciding tests), and ``input_change``: the descriptive tests significant within their own
    family (a change the model may not see, e.g. blur a 48x64 input loses). Every test gets
    ``in_verdict`` and ``significant`` (its p times the size of its own family below
    ``alpha``)."""
    decide = VERDICT_TESTS if decide is None else tuple(decide)
    family = [n for n in tests if n in decide] or list(tests)
    rest = [n for n in tests if n not in family]
    for names in (family, rest):
        for n in names:
            tests[n]["in_verdict"] = n in family
            tests[n]["significant"] = bool(tests[n]["p_value"] * len(names) < alpha)
    p = min(1.0, len(family) * min(tests[n]["p_value"] for n in family))
    return {"drift": bool(p < alpha), "p_value": float(p), "alpha": float(alpha),
            "input_change": [n for n in rest if tests[n]["significant"]],
            "correction": f"Bonferroni over {len(family)} tests ({', '.join(family)})"
                          + (f"; {len(rest)} input statistics descriptive" if rest else "")}


def format_report(report: dict) -> str:
    """The verdict and one line per test, as ``monitor`` prints them."""
    tests = report["tests"]
    worst = sorted(tests, key=lambda n: tests[n]["p_value"])[:3]
    head = ("DRIFT: the batch is unlike the reference" if report["drift"] else
            "no drift detected")
    if report.get("input_change"):
        head += (" (the images themselves differ in " + ", ".join(report["input_change"])
                 + ": descriptive, not in the verdict)")
    lines = [f"{head} (p = {report['p_value']:.3g}, {report['correction']}, alpha "
             f"{report['alpha']}); {report['n_images']} images tested against "
             f"{report['n_reference']} reference images, {report['n_skipped']} skipped",
             "smallest p-values: " + ", ".join(f"{n} {tests[n]['p_value']:.2g}" for n in worst),
             f"{'test':16s} {'statistic':>10s} {'p-value':>9s}  significant"]
    lines += [f"{n:16s} {t['statistic']:10.4g} {t['p_value']:9.3g}  "
              f"{'yes' if t['significant'] else 'no'}"
              + ("" if t.get("in_verdict", True) else "  (descriptive)")
              for n, t in tests.items()]
    lines += [f"skipped {s['path']}: {s['problem']}" for s in report.get("skipped", [])]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# graded shifts and repeated batches (notebook 09)
# --------------------------------------------------------------------------------------------

# Strength levels, mildest first: brightness added (share of 255); Gaussian blur sigma (px at
# 150 px height); JPEG quality (lower is stronger); colour cast (red x (1 + s), blue x (1 - s)).
# Chosen on the real 200x150 images so that the input-statistics tests alone go from rarely to
# always flagging batches of 200 (brightness 0.01: 10%, 0.05: 100%; colour cast 0.02: 10%,
# 0.05: 100%; JPEG 90: 0%, 70: 90%; blur 0.25: 0%, 0.5: 100%). The verdict's model-side tests
# see less of them (quick run, 48x64 input: blur 10% and JPEG 0% at the strongest level).
CORRUPTIONS = {"brightness": (0.01, 0.02, 0.05, 0.1), "blur": (0.25, 0.35, 0.5, 1.0),
               "jpeg": (90, 80, 70, 50), "colour_cast": (0.01, 0.02, 0.035, 0.05)}


def corrupt(image, kind: str, strength: float) -> np.ndarray:
    """One uint8 RGB image with a corruption of :data:`CORRUPTIONS` at ``strength``."""
    import cv2

    img = np.asarray(image, np.uint8)
    if kind == "brightness":
        return np.clip(img.astype(np.float32) + 255.0 * strength, 0, 255).astype(np.uint8)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), sigmaX=max(strength * img.shape[0] / 150, 1e-3))
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(strength)])
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if kind == "colour_cast":
        gain = np.array([1.0 + strength, 1.0, 1.0 - strength], np.float32)
        return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    raise ValueError(f"corruption {kind!r}: use one of {', '.join(CORRUPTIONS)}")


def trials(reference: Features, pool: Features, card, *, batch_size: int, n_batches: int,
           seed: int = 0, **kwargs) -> pd.DataFrame:
    """:func:`compare` on ``n_batches`` random batches of ``batch_size`` rows of ``pool``
    (without replacement within a batch): one row per batch (``p_value``, ``drift``)."""
    rng, rows = np.random.default_rng(seed), []
    size = min(batch_size, len(pool))
    for b in range(n_batches):
        pick = np.sort(rng.choice(len(pool), size, replace=False))
        rep = compare(reference, pool.subset(pick), card, seed=seed + b, **kwargs)
        rows.append({"batch": b, "n_images": size, "p_value": rep["p_value"],
                     "drift": rep["drift"]})
    return pd.DataFrame(rows)


def detection_rates(model, card, reference: Features, images, size, *, batch_size: int,
                    n_batches: int, corruptions: dict | None = None, seed: int = 0,
                    **kwargs) -> pd.DataFrame:
    """Share of corrupted batches flagged, per corruption and strength.

    Every image of ``images`` (uint8 RGB, the pool batches are drawn from) is corrupted once
    per strength; then :func:`trials` draws the batches.
    """
    emb_model, rows = embedding_model(model), []
    for kind, strengths in (corruptions or CORRUPTIONS).items():
        for level, strength in enumerate(strengths, 1):
            pool = features(model, [corrupt(im, kind, strength) for im in images], size,
                            emb_model=emb_model, resize=card.resize)
            res = trials(reference, pool, card, batch_size=batch_size, n_batches=n_batches,
                         seed=seed, **kwargs)
            rows.append({"corruption": kind, "level": level, "strength": strength,
                         "detection_rate": float(res["drift"].mean()),
                         "median_p": float(res["p_value"].median()), "n_batches": n_batches})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# ``python -m skinlib monitor``
# --------------------------------------------------------------------------------------------

def reference_features(predictor, run_dir) -> Features:
    """The reference of a model in a run folder: the validation images' features saved with
    its card (``models/<name>.reference.npz``), else computed from the run's validation split."""
    from skinlib.card import from_json
    from skinlib.rundir import read_card

    run = RunDir(run_dir)
    if not (run.root / "splits.csv").exists():
        raise FileNotFoundError(f"{run.root} is not a skinlib run folder (no splits.csv): pass "
                                "the --out folder of `python -m skinlib run`")
    card, arrays = read_card(run.models / predictor.path.name)
    if card is not None and arrays is not None:
        return from_json(card, arrays).reference
    env = run.read_record("logs/environment.json")
    if env is None:
        raise FileNotFoundError(f"{run.root}/logs/environment.json is missing: cannot tell which "
                                "data the run used; re-run its notebooks with this skinlib")
    from skinlib import session as session_mod

    keep = ("seed", "val_frac", "test_frac", "k_folds", "dataset")
    s = session_mod.start(env["profile"]["name"], env["data"], str(run.root),
                          {k: env["profile"][k] for k in keep}, quiet=True)
    return predictor.file_features(s.frame("val")["path"].tolist())


def monitor_folder(model_path, reference_run, data, *, n_perm: int = 2000, alpha: float = 0.05,
                   seed: int = 0, progress: bool | None = None):
    """Every drift test of the images under ``data`` against a run's validation images.

    Returns:
        ``(report, reference, batch, card)``: the :func:`compare` dict (plus ``model``,
        ``reference``, ``data``, ``warning``), both :class:`Features` and the model card.
    """
    from skinlib.predict import Predictor, collect_images

    if not Path(data).exists():
        raise FileNotFoundError(f"{data}: no such folder or file")
    paths = collect_images([data])
    if not paths:
        raise ValueError(f"{data}: no JPEG/PNG image found")
    predictor = Predictor(model_path)
    reference = reference_features(predictor, reference_run)
    show = len(paths) > 20 if progress is None else progress
    batch = predictor.file_features(paths, progress=show)
    if len(batch) < MIN_BATCH:
        raise ValueError(f"{data}: {len(batch)} readable image(s) ({len(batch.skipped)} "
                         f"unreadable): drift tests need at least {MIN_BATCH}")
    report = compare(reference, batch, predictor.card, n_perm=n_perm, alpha=alpha, seed=seed)
    report.update(model=str(model_path), reference=str(reference_run), data=str(data),
                  data_key=data_key(data), warning=predictor.warning)
    return report, reference, batch, predictor.card


def data_key(data) -> str:
    """8 hex digits of batch folder ``data``'s resolved path (no path in the report itself)."""
    return hashlib.sha256(str(Path(data).resolve()).encode()).hexdigest()[:8]


def report_name(data, run: RunDir) -> str:
    """The report folder's name of batch folder ``data`` under ``run/monitor``: its name, or
    ``<name>-<data_key>`` when that name already holds another folder's report."""
    name, key = Path(data).resolve().name, data_key(data)
    plain = run.root / "monitor" / name / "report.json"
    if not plain.exists() or json.loads(plain.read_text()).get("data_key") in (None, key):
        return name
    return f"{name}-{key}"


def write_outputs(report: dict, reference: Features, batch: Features, card, run_dir) -> dict:
    """Write ``monitor/<data folder>/report.json``, ``report.md`` and ``drift.png`` under the
    reference run folder; return their paths. The folder is the batch folder's name, with a
    short hash of its full path when another batch of that name was already reported there."""
    run = RunDir(run_dir)
    folder = f"monitor/{report_name(report['data'], run)}"
    paths = {"json": run.write_json(f"{folder}/report.json", report),
             "report": run.inside(f"{folder}/report.md"),
             "figure": run.inside(f"{folder}/drift.png")}
    paths["report"].write_text(format_report(report) + "\n")
    from skinlib import plots

    plots.drift(reference, batch, report, card).savefig(paths["figure"], dpi=120,
                                                        bbox_inches="tight")
    return paths
