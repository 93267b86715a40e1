"""Tests for skinlib.plots: every function returns a Figure of the expected shape on tiny data."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from skinlib import eda, info, metrics, plots  # noqa: E402
from skinlib.rundir import RunDir  # noqa: E402

CLASSES = info.classes("ham10000")
K = len(CLASSES)


@pytest.fixture
def catalog(tmp_path):
    """A 28-row HAM10000-schema catalog whose paths are real small JPEG/PNG files."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(28):
        dx = CLASSES[i % K] if i < 21 else "nv"
        path = tmp_path / f"ISIC_{i:07d}.{'png' if i % 5 == 0 else 'jpg'}"
        size = (40, 30) if i % 3 else (32, 24)
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        rows.append(dict(image_id=path.stem, lesion_id=f"HAM_{i // 2:07d}", dx=dx,
                         label=CLASSES.index(dx), path=str(path),
                         age=float(20 + i * 2) if i != 3 else np.nan,
                         sex=["male", "female", "unknown"][i % 3],
                         localization=["back", "face", "trunk", "lower extremity"][i % 4],
                         dx_type=["histo", "follow_up", "consensus"][i % 3]))
    df = pd.DataFrame(rows)
    df.attrs["classes"] = CLASSES
    return df


@pytest.fixture
def results():
    rng = np.random.default_rng(1)
    y = np.r_[np.arange(K), rng.integers(0, K, 93)]
    out = {}
    for name, signal in (("cnn", 1.0), ("resnet", 2.0)):
        logits = rng.normal(size=(len(y), K))
        logits[np.arange(len(y)), y] += signal
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        out[name] = (y, p, metrics.evaluate(y, p, CLASSES, n_bootstrap=30))
    return out


def check(fig, n_axes):
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    fig.canvas.draw()  # layout and rendering must not fail
    return fig


def test_class_counts(catalog):
    fig = check(plots.class_counts(catalog), 1)
    ax = fig.axes[0]
    assert len(ax.patches) == K
    assert sorted(p.get_height() for p in ax.patches)[-1] == 10  # nv
    assert "imbalance ratio 3:1" in ax.get_title()
    assert ax.patches[CLASSES.index("mel")].get_facecolor()[:3] == pytest.approx(
        matplotlib.colors.to_rgb(info.COLORS["mel"]))


def test_class_order_without_attrs(catalog):
    catalog.attrs.clear()
    fig = check(plots.class_counts(catalog), 1)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == CLASSES


def test_eda_panels(catalog):
    fig = check(plots.images_per_lesion(catalog.iloc[1:]), 2)
    assert "14 lesions in 27 images" in fig.axes[0].get_title()
    assert fig.axes[0].get_yscale() == "log"  # the tail of many-image lesions stays visible
    assert [t.get_text() for t in fig.axes[0].texts] == ["1", "13"]  # lesions of 1 and 2 images
    shares = np.array([p.get_width() for p in fig.axes[1].patches]).reshape(-1, 2)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)  # each bar of the right panel is 100%
    fig = check(plots.age_by_dx(catalog), 1)
    assert "1 images without age" in fig.axes[0].get_title()
    medians = catalog.groupby("dx")["age"].median().reindex(CLASSES)
    assert [t.get_text() for t in fig.axes[0].texts] == [f"{m:.0f}" for m in medians]
    fig = check(plots.sex_by_dx(catalog), 1)
    assert len(fig.axes[0].patches) == K * 3  # 3 sexes
    fig = check(plots.dx_type_by_dx(catalog), 1)
    assert len(fig.axes[0].patches) == K * 3
    fig = check(plots.localization_by_dx(catalog, top=3), 2)  # heat map + colour bar
    assert fig.axes[0].collections[0].get_array().shape == (K, 3)
    for f in ("sex_by_dx", "age_by_dx"):
        with pytest.raises(ValueError, match="lacks column"):
            getattr(plots, f)(catalog.drop(columns=[f.split("_")[0]]))


def test_example_grid_and_image_stats(catalog, tmp_path):
    bad = tmp_path / "ISIC_broken.jpg"
    bad.write_bytes(b"not an image")
    catalog.loc[0, "path"] = str(bad)  # one unreadable file: shown, not a crash
    fig = check(plots.example_grid(catalog, per_class=3, seed=0), K * 3)
    assert sum(len(ax.get_images()) for ax in fig.axes) == 6 * 3 + 3 - 1  # akiec has 3 images
    row_names = [ax.get_ylabel() for ax in fig.axes[::3]]
    assert row_names[CLASSES.index("mel")] == "mel\nMelanoma"
    assert row_names[CLASSES.index("df")].startswith("df\nDermatofibroma")
    stats = eda.image_sample(catalog, sample=100, seed=0)  # all 28 files
    assert (stats["n"], stats["bad"]) == (27, 1) and stats["sizes"].sum() == 27
    fig = check(plots.image_stats(stats), 2)
    assert "(27 sampled, 1 unreadable)" in fig.axes[0].get_title()
    assert len(fig.axes[1].patches) == 3 * len(set(catalog["dx"]))


def test_history_plots_loss_and_marks_the_restored_epoch():
    hist = {"loss": [1.0, 0.8, 0.6], "val_loss": [1.1, 0.7, 0.8], "accuracy": [0.5, 0.6, 0.7],
            "val_accuracy": [0.4, 0.5, 0.6], "learning_rate": [1e-3] * 3}
    fig = check(plots.history(hist), 1)  # plain accuracy is not drawn
    ax = fig.axes[0]
    assert ax.get_title() == "loss"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["training", "validation", "restored: epoch 2"]
    assert all(float(t).is_integer() for t in ax.get_xticks())  # no epoch 1.5
    frame = pd.DataFrame(hist).assign(epoch=range(3))
    fig = check(plots.history(frame, stage_boundary=2), 1)
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2, 3])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[-2:] == ["stage 2 starts", "restored: epoch 3"]  # the best of stage 2
    bal = {**hist, "balanced_accuracy": [0.3, 0.4, 0.5], "val_balanced_accuracy": [0.2, 0.3, 0.3]}
    fig = check(plots.history(bal), 2)
    assert [a.get_title() for a in fig.axes] == ["loss", "balanced accuracy"]
    with pytest.raises(ValueError, match="empty"):
        plots.history({})
    with pytest.raises(ValueError, match="no loss"):
        plots.history({"accuracy": [0.5]})


def test_learning_curves_one_line_per_model_with_restored_epochs():
    fig = check(plots.learning_curves({"fold 0": pd.DataFrame({"loss": [1.2, 1.0],
                                                               "val_loss": [1.0, 0.8]}),
                                       "fold 1": {"val_loss": [1.1, 0.7, 0.9]}},
                                      stage_boundaries={"fold 0": 0, "fold 1": None}), 2)
    train_ax, val_ax = fig.axes
    assert val_ax.get_title() == "validation loss"
    assert len(train_ax.get_lines()) == 3  # fold 0, its star, its stage-2 marker
    stars = [ln for ln in val_ax.get_lines() if ln.get_marker() == "*"]
    assert [(list(ln.get_xdata()), list(ln.get_ydata())) for ln in stars] == [
        ([2], [0.8]), ([2], [0.7])]
    with pytest.raises(ValueError, match="empty"):
        plots.learning_curves({})


def test_evaluation_figures(results):
    y, p, r = results["cnn"]
    fig = check(plots.confusion_matrix(r), 2)
    m = fig.axes[0].collections[0].get_array()
    np.testing.assert_allclose(np.asarray(m).sum(axis=1), 1.0)
    check(plots.confusion_matrix(r, normalize=False), 2)
    by_model = {k: v[2] for k, v in results.items()}
    fig = check(plots.per_class_recall(by_model), 1)
    assert len(fig.axes[0].patches) == 2 * K
    assert fig.axes[0].patches[0].get_height() == pytest.approx(by_model["cnn"]["per_class"][
        CLASSES[0]]["recall"])
    fig = check(plots.roc_curves(y, p, CLASSES), 1)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == K + 1 and labels[-1].startswith("macro")
    mel_auc = r["per_class"]["mel"]["auc"]
    assert f"mel (AUC {mel_auc:.3f})" in labels
    fig = check(plots.reliability_diagram(y, {"cnn": p, "resnet": results["resnet"][1]}), 2)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == f"cnn (ECE {r['ece']:.3f})"
    fig = check(plots.metric_bars(by_model), 2)
    assert len(fig.axes[0].patches) == 2
    fig = check(plots.metric_bars(by_model, metrics=("macro_f1",)), 1)
    assert fig.axes[0].get_title() == "macro F1"
    fig = check(plots.recall_heatmap(by_model), 2)
    assert fig.axes[0].collections[0].get_array().shape == (2, K)


@pytest.mark.parametrize("kind", ["uint8", "unit", "tanh", "gray"])
def test_image_grid(kind):
    rng = np.random.default_rng(0)
    imgs = {"uint8": rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8),
            "unit": rng.uniform(0, 255, (10, 8, 8, 3)),
            "tanh": rng.uniform(-1, 1, (10, 8, 8, 3)),
            "gray": rng.uniform(0, 1, (10, 8, 8, 1))}[kind]
    fig = check(plots.image_grid(imgs, titles=[str(i) for i in range(10)], ncols=4,
                                 suptitle="x"), 12)
    shown = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert len(shown) == 10
    assert all(0 <= np.min(a) and np.max(a) <= 1 for a in shown)
    with pytest.raises(ValueError, match="titles"):
        plots.image_grid(imgs, titles=["a"])


def test_save(tmp_path, catalog):
    fig = plots.class_counts(catalog)
    run = RunDir(tmp_path / "run")
    path = plots.save(fig, run, "class_counts")
    assert path == run.figures / "class_counts.png" and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.save(fig, tmp_path / "other", "a.png") == tmp_path / "other" / "figures" / "a.png"
    assert plots.save(fig, run.figures, "b").parent == run.figures
    with pytest.raises(ValueError, match="plain file name"):
        plots.save(fig, run, "../escape")


def _luminance(color) -> float:
    """WCAG relative luminance of a matplotlib colour."""
    c = np.asarray(matplotlib.colors.to_rgb(color))
    linear = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def _cell_text_contrast(ax) -> dict[str, float]:
    """WCAG contrast ratio of each cell label with its cell's colour, keyed by the label."""
    mesh = next(a for a in [*ax.get_images(), *ax.collections] if a.get_array() is not None)
    out = {}
    for text in ax.texts:
        lum = sorted([_luminance(text.get_color()),
                      _luminance(mesh.to_rgba(float(text.get_text())))])
        out[text.get_text()] = (lum[1] + 0.05) / (lum[0] + 0.05)
    return out


def test_heatmap_labels_contrast_with_their_cells(results):
    """White on yellow is unreadable: a viridis cell near 1.0 needs dark text, near 0 light."""
    recall = np.linspace(0, 1, K)
    by_model = {name: {"classes": CLASSES, "per_class": {c: {"recall": v} for c, v in
                                                         zip(CLASSES, values)}}
                for name, values in (("up", recall), ("down", recall[::-1]))}
    ax = plots.recall_heatmap(by_model).axes[0]
    assert len(ax.texts) == 2 * K
    contrast = _cell_text_contrast(ax)
    assert min(contrast.values()) >= 2.0, contrast
    top = next(t for t in ax.texts if t.get_text() == "1.00")
    bottom = next(t for t in ax.texts if t.get_text() == "0.00")
    assert _luminance(top.get_color()) < 0.2 < 0.8 < _luminance(bottom.get_color())
    ax = plots.confusion_matrix(results["cnn"][2]).axes[0]
    assert len(ax.texts) == K * K and min(_cell_text_contrast(ax).values()) >= 2.0


def _contrast_on_white(color) -> float:
    """WCAG contrast ratio of a colour against white."""
    return 1.05 / (_luminance(color) + 0.05)


def test_every_class_colour_reads_on_white():
    """Lines, tick labels and titles drawn in a class colour need 3:1 against white (WCAG for
    graphics); Okabe-Ito's yellow, df's old colour, had 1.3:1."""
    assert _contrast_on_white("#F0E442") < 1.5 and _contrast_on_white("black") == pytest.approx(21)
    weak = {dx: round(_contrast_on_white(c), 2) for dx, c in info.COLORS.items()
            if _contrast_on_white(c) < 3.0}
    assert not weak, f"class colours too light on white: {weak}"
    for dataset in info.DATASETS:
        assert set(info.classes(dataset)) <= set(info.COLORS), dataset
    ham = [info.COLORS[c] for c in info.classes("ham10000")]
    assert len(set(ham)) == len(ham)


def test_metric_bars_readable_and_coloured_by_notebook(results):
    r = results["cnn"][2]
    by_model = {"baseline_cnn": {**r, "model": "02_baseline_cnn"},
                "cnn_weights": {**r, "model": "04_cnn_weights"},
                "cnn_gan": {**r, "model": "04_cnn_gan"}}
    fig = check(plots.metric_bars(by_model, ("balanced_accuracy",
                                             "mel_sensitivity_at_spec80")), 2)
    w, h = fig.get_size_inches() * 120
    assert w < 1400 and h < 800  # the old 3-panel figure was 3145 px wide
    assert [a.get_title() for a in fig.axes] == ["balanced accuracy",
                                                 "mel sensitivity at 80% specificity"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(by_model)
    assert {t.get_fontsize() for t in ax.texts} == {9}
    assert ax.texts[0].get_text() == f"{r['balanced_accuracy']:.3f}"
    colours = [p.get_facecolor() for p in ax.patches]
    assert colours[1] == colours[2] != colours[0]  # one colour per notebook
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["02 baseline cnn", "04 gan augmented cnn"]


def test_gan_figures():
    rng = np.random.default_rng(0)
    log = pd.DataFrame({"step": [10, 20, 30], "d_loss": [1.2, 1.3, 1.1], "g_loss": [0.9, 0.8, 1.0]})
    losses = {dx: log for dx in ("akiec", "df", "mel", "vasc")}
    fig = check(plots.gan_losses(losses), 6)  # 2 x 3 grid, two panels switched off
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].startswith("discriminator: ") and legend[1].startswith("generator: ")
    assert fig.axes[1].get_title() == "df: Dermatofibroma"
    blocks = {dx: {"real": rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
                   "generated": rng.uniform(-1, 1, (4, 8, 8, 3)),
                   "nearest": rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
                   "distances": [10.0, 20.0, 30.0, 40.0]} for dx in ("df", "mel")}
    fig = check(plots.gan_vs_real(blocks, n=4), 3 * 2 * 4)
    assert [sf._suptitle.get_text() for sf in fig.subfigs] == [
        "real training images", "generated by the GAN", "nearest training image to each"]
    assert [ax.get_title() for ax in fig.subfigs[2].axes[:4]] == ["d=10", "d=20", "d=30", "d=40"]
    assert fig.subfigs[0].axes[4].get_ylabel() == "mel"
    table = pd.DataFrame({"kid": [0.05, 0.2], "ci95": [[0.03, 0.07], None], "floor": [0.01, 0.03],
                          "floor_ci95": [[0.0, 0.02], [0.01, 0.05]]}, index=["df", "mel"])
    fig = check(plots.kid_vs_floor(table), 1)
    ax = fig.axes[0]
    wide = pd.concat([table, table.iloc[[0]].rename(index={"df": "vasc"})]).assign(
        kid=[0.05, 20.0, 0.06])  # one GAN far off: an arrow at the edge, the rest stays readable
    far = plots.kid_vs_floor(wide).axes[0]
    assert [t.get_text() for t in far.texts] == ["20"]
    assert far.get_xlim()[1] == pytest.approx(3 * 0.06 * 1.05)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["df", "mel"]
    assert len(fig.legends[0].get_texts()) == 2
    points = list(ax.containers)
    assert len(points) == 3  # the floors, then one per class
    np.testing.assert_allclose(np.asarray(points[0].lines[0].get_xdata(), float), [0.01, 0.03])
    assert np.asarray(points[2].lines[0].get_xdata(), float).ravel()[0] == 0.2


def test_randomization_cascade():
    def spread(values):
        return {"median": float(np.median(values)), "values": list(values)}

    rng = np.random.default_rng(0)
    steps = [{"randomised": name, "verdict": verdict,
              "abs_rho": spread(rng.uniform(lo, lo + 0.1, 6)),
              "ssim": spread(rng.uniform(lo - 0.2, lo, 6))}
             for name, verdict, lo in (("probs", "insensitive", 0.8), ("block2", "sensitive", 0.1),
                                       ("block1", "sensitive", 0.05))]
    steps[2]["abs_rho"]["values"][0] = None  # a flat map has no rank correlation
    check_ = {"steps": steps, "layer": "block2_relu2",
              "null": {"abs_rho": spread(rng.uniform(0, 0.2, 18)),
                       "ssim": spread(rng.uniform(-0.1, 0.1, 18))}}
    fig = check(plots.randomization_cascade(check_), 2)
    top = fig.axes[0]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["probs", "block2", "block1"]
    assert top.patches[0].get_label().startswith("null")  # the null band comes first
    colours = [p.get_facecolor() for p in top.patches[1:]]
    assert colours[0] != colours[1] == colours[2]  # the insensitive depth stands out


def test_leakage_pairs_each_seed_and_shows_every_difference():
    def run(seed, leaky, unseen):
        return {"seed": seed, "test": {"balanced_accuracy": leaky},
                "unseen": {"balanced_accuracy": unseen}}

    def diff(mean, verdict):
        return {"mean": mean, "ci95": [mean - 0.05, mean + 0.05], "verdict": verdict,
                "per_seed": [{"seed": 1, "diff": mean - 0.01}, {"seed": 2, "diff": mean + 0.01}]}

    m = {"sizes": [{"image_size": [28, 28], "runs": [run(1, 0.7, 0.6), run(2, 0.72, 0.61)],
                    "difference": {"balanced_accuracy": diff(0.1, "inflates"),
                                   "accuracy": diff(0.01, "not distinguishable")}}]}
    fig = plots.leakage(m)
    left, right = fig.axes
    assert len(left.get_lines()) == 2  # one line per seed: the same model on both test sets
    assert [ln.get_ydata().tolist() for ln in left.get_lines()] == [[0.7, 0.6], [0.72, 0.61]]
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert labels == ["28x28: balanced accuracy", "28x28: accuracy"]
    assert {t.get_text() for t in right.texts} == {"inflates", "not distinguishable"}
