"""Profiles: one place for every knob, overridable from notebooks and the CLI."""

import pytest

from skinlib.config import PROFILES, get_profile
from skinlib.runner import parse_sets


def test_profiles_scale_up():
    smoke, quick, full = (get_profile(p) for p in PROFILES)
    assert smoke.data == "synthetic" and quick.data == "auto" and full.data == "auto"
    assert smoke.image_size[1] < quick.image_size[1] < full.image_size[1]
    assert (smoke.gan_size, quick.gan_size, full.gan_size) == (32, 64, 128)
    assert full.transfer_size == (224, 224) and smoke.transfer_weights is None
    assert smoke.epochs < quick.epochs < full.epochs
    assert (smoke.k_folds, quick.k_folds, full.k_folds) == (2, 3, 5)


def test_leakage_sizes_per_profile():
    """Notebook 12's leakage pairs: smoke at its own size, quick 28x28 only, full both."""
    from skinlib.leakage import resolve_sizes

    smoke, quick, full = (get_profile(p) for p in PROFILES)
    assert resolve_sizes(smoke) == [(24, 32)]
    assert resolve_sizes(quick) == [(28, 28)]
    assert resolve_sizes(full) == [(96, 128), (28, 28)]
    assert resolve_sizes(full, [(8, 8)]) == [(8, 8)]


def test_overrides_keep_types_and_ignore_none():
    p = get_profile("smoke", epochs=None, **parse_sets(["batch_size=8", "augment=false",
                                                        "image_size=48x64", "learning_rate=0.01"]))
    assert p.epochs == get_profile("smoke").epochs
    assert p.batch_size == 8 and p.augment is False
    assert p.image_size == (48, 64) and p.learning_rate == 0.01


def test_env_profile(monkeypatch):
    monkeypatch.setenv("SKINLIB_PROFILE", "smoke")
    assert get_profile().name == "smoke"


@pytest.mark.parametrize("bad, message", [
    ({"name": "huge"}, "unknown profile"),
    ({"epochz": 3}, "unknown profile field"),
])
def test_bad_profile_names_the_value(bad, message):
    with pytest.raises(ValueError, match=message):
        get_profile(bad.pop("name", "smoke"), **bad)


def test_bad_set_syntax():
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_sets(["epochs"])


def test_none_string_sets_a_field_to_none():
    p = get_profile("quick", **parse_sets(["transfer_weights=none"]))
    assert get_profile("quick").transfer_weights == "imagenet" and p.transfer_weights is None


def test_seed_repeats_per_profile():
    """Key comparisons need seeds: quick at least 2, full at least 3 (05/06 too); smoke stays
    fast; 04's arms share 02's budget (there is no separate retrain budget any more)."""
    smoke, quick, full = (get_profile(p) for p in PROFILES)
    assert 1 <= smoke.repeats <= 2 and quick.repeats >= 2 and full.repeats >= 3
    assert full.repeats_large >= 3 and quick.repeats_large >= 1
    assert not hasattr(full, "retrain_epochs")
    assert smoke.kid_min_real == quick.kid_min_real == 20


def test_the_readme_profile_table_says_what_config_holds():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): [c.strip(" `") for c in line.split("|")[2:-1]]
            for line in readme.splitlines() if line.startswith("| `") and "px" in line}
    assert set(rows) == {"smoke", "quick", "full"}
    for name, (_, arch, size, epochs, seeds, gan, resnet) in rows.items():
        p = get_profile(name)
        assert arch == p.cnn_arch and size == "x".join(map(str, p.image_size)), name
        assert int(epochs) == p.epochs and int(seeds) == p.repeats, name
        assert gan.startswith(f"{p.gan_size} px, {p.gan_steps} steps"), name
        assert resnet.startswith(f"{p.transfer_size[0]} px"), name
        assert ("ImageNet" in resnet) == (p.transfer_weights == "imagenet"), name
