import numpy as np
import pytest
import torch

from cag_lib.shapes import COLOUR_NAMES, SHAPES, SIZE_NAMES, make_shapes


def test_same_seed_same_world():
    a, b = make_shapes(16, seed=7), make_shapes(16, seed=7)
    assert torch.equal(a.images, b.images) and a.captions == b.captions


def test_other_seed_other_world():
    assert not torch.equal(make_shapes(16, seed=1).images, make_shapes(16, seed=2).images)


@pytest.mark.parametrize("size", [32, 64])
def test_sizes_and_range(size):
    d = make_shapes(8, seed=0, size=size)
    assert d.images.shape == (8, 3, size, size) and 0 <= d.images.min() and d.images.max() <= 1


def test_captions_name_the_attributes():
    d = make_shapes(50, seed=3)
    for i, cap in enumerate(d.captions):
        s = SHAPES[d.labels["shape"][i]]
        c, bg = COLOUR_NAMES[d.labels["colour"][i]], COLOUR_NAMES[d.labels["background"][i]]
        assert cap == f"a {SIZE_NAMES[d.labels['size'][i]]} {c} {s} on a {bg} background"
        assert c != bg


def test_fixed_attributes_and_variety():
    d = make_shapes(40, seed=0, shape="star", colour="red")
    assert set(d.labels["shape"].tolist()) == {SHAPES.index("star")}
    assert set(d.labels["colour"].tolist()) == {COLOUR_NAMES.index("red")}
    assert len(set(d.labels["background"].tolist())) > 3
    assert len({round(s.angle, 3) for s in d.specs}) == 40  # rotations vary


def test_every_class_appears_and_images_show_their_colours():
    d = make_shapes(400, seed=0)
    assert set(d.labels["shape"].tolist()) == set(range(len(SHAPES)))
    # the corner pixel is the background colour, the most common other colour the shape's
    from cag_lib.shapes import COLOURS
    for i in range(20):
        corner = (d.images[i, :, 0, 0] * 255).numpy()
        bg = np.array(COLOURS[COLOUR_NAMES[d.labels["background"][i]]])
        assert np.abs(corner - bg).max() <= 16


def test_unknown_attribute_lists_valid_names():
    with pytest.raises(ValueError, match="valid shapes: circle, square"):
        make_shapes(2, shape="pentagon")
    with pytest.raises(ValueError, match="differ"):
        make_shapes(2, colour="red", background="red")
