"""Baseline CNN architectures: shapes, layer counts, and the faster gap1."""

import numpy as np
import pytest

from skinlib.models.cnn import ARCHS, build_cnn


def _convs(model):
    return [lyr for lyr in model.layers if lyr.__class__.__name__ == "Conv2D"]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_gives_probabilities_for_raw_rgb(arch):
    model = build_cnn((48, 64), 7, arch=arch)
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 64, 3)).astype("float32")
    p = model.predict(x, verbose=0)
    assert p.shape == (2, 7) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert model.name == f"cnn_{arch}" and model.layers[1].name == "rescale"


def test_gap1_is_gap_with_one_convolution_a_block():
    gap, gap1 = build_cnn((48, 64), 7, arch="gap"), build_cnn((48, 64), 7, arch="gap1")
    assert len(_convs(gap)) == 8 and len(_convs(gap1)) == 4
    assert [c.filters for c in _convs(gap1)] == [32, 64, 128, 256]
    assert [c.filters for c in _convs(gap)][::2] == [32, 64, 128, 256]
    assert gap1.count_params() < gap.count_params() / 2
    assert {lyr.name for lyr in gap1.layers} <= {lyr.name for lyr in gap.layers}


def test_narrow_is_gap1_at_half_the_width():
    gap1, narrow = build_cnn((48, 64), 7, arch="gap1"), build_cnn((48, 64), 7, arch="narrow")
    assert [c.filters for c in _convs(narrow)] == [16, 32, 64, 128]
    assert [lyr.name for lyr in narrow.layers] == [lyr.name for lyr in gap1.layers]
    assert narrow.count_params() < gap1.count_params() / 3


def test_unknown_arch():
    with pytest.raises(ValueError, match="arch='vgg'"):
        build_cnn((48, 64), 7, arch="vgg")


def test_sep_keeps_gap1s_grid_with_a_strided_stem_and_separable_blocks():
    gap1, sep = build_cnn((48, 64), 7, arch="gap1"), build_cnn((48, 64), 7, arch="sep")
    stem = sep.get_layer("block1_conv1")
    assert stem.__class__.__name__ == "Conv2D" and stem.strides == (2, 2)
    assert [sep.get_layer(f"block{i}_conv1").__class__.__name__ for i in (2, 3, 4)] == \
        ["SeparableConv2D"] * 3
    assert sep.get_layer("block1_relu1").output.shape[1:3] == (24, 32)
    for name in ("block2_relu1", "block3_relu1", "block4_relu1", "gap"):
        assert sep.get_layer(name).output.shape == gap1.get_layer(name).output.shape
    assert sep.count_params() < gap1.count_params() / 5
