import matplotlib
import pytest
import torch

from cag_lib.viz import rows_figure

matplotlib.use("Agg")


def test_column_labels_sit_over_their_groups():
    """A figure of several recipes side by side names each group of columns, centred over it."""
    rows = {"circle": torch.rand(6, 3, 8, 8), "square": torch.rand(6, 3, 8, 8)}
    fig = rows_figure(rows, columns=["one recipe", "another"], scale=1)
    top = fig.axes[0]
    assert [t.get_text() for t in top.texts] == ["one recipe", "another"]
    width = top.images[0].get_array().shape[1]
    assert [t.get_position()[0] for t in top.texts] == [width / 4, 3 * width / 4]
    assert all(t.get_position()[1] < 0 for t in top.texts)      # above the pictures (image rows grow down)
    assert not fig.axes[1].texts                       # the labels only over the first row
    assert not rows_figure(rows, scale=1).axes[0].texts


def test_column_labels_must_split_the_row_evenly():
    with pytest.raises(ValueError, match="equal groups"):
        rows_figure({"circle": torch.rand(5, 3, 8, 8)}, columns=["a", "b"], scale=1)
