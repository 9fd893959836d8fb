"""The book's pipeline figure: one step of CaG drawn from a real run, book/figures/pipeline.png.

    python scripts/pipeline_figure.py [--out book/figures/pipeline.png]

x (an image being optimised) -> a fresh random mask m_t -> the MAE's reconstruction g(x; m_t) ->
the classifier f -> the loss L_cls -> the gradient with respect to x -> an Adam step on x. Every
panel is computed here: a stored CaG image of the comparison chapter's 250-step run, a mask drawn
with seed 0, the fmnist bundle's MAE and ResNet.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F

from cag_lib.panel import load_sample_set
from cag_lib.zoo import load_bundle

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SNEAKER = 7


def one_step(bundle, x: torch.Tensor):
    """The pieces of one step for one image x (1, 1, 32, 32)."""
    mae, clf = bundle.mae, bundle.classifiers[0]
    noise = mae.mask_noise(1, torch.Generator().manual_seed(0))
    x = x.clone().requires_grad_(True)
    g, mask = mae.reconstruct(x, 0.75, noise=noise, keep_visible=False, return_mask=True)
    logits = clf(g).logits
    loss = F.cross_entropy(logits, torch.tensor([SNEAKER]))
    loss.backward()
    shown = x.detach() * (1 - mae.mask_image(mask)) + 0.5 * mae.mask_image(mask)    # masked patches grey
    return shown, g.detach(), logits.softmax(-1)[0].detach(), loss.item(), x.grad[0, 0]


def draw(bundle, x, out: Path) -> None:
    masked, g, probs, loss, grad = (t.numpy() if hasattr(t, "numpy") else t for t in one_step(bundle, x))
    x = x.numpy()
    fig, axes = plt.subplots(1, 7, figsize=(13, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.3, 1.3, 0.7, 1],
                                                                   "wspace": 0.55})
    axes[3].set_axis_off()                                # room for the class names
    axes = [*axes[:3], *axes[4:]]
    images = [(x[0, 0], "x: the image\nbeing optimised"), (masked[0, 0], "a fresh mask $m_t$:\n75 % of patches hidden"),
              (g[0, 0], "$g(x; m_t)$: the MAE\nfills them in")]
    for ax, (img, title) in zip(axes[:3], images):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    names = [n.split("/")[0] for n in bundle.class_names]
    axes[3].barh(range(10), probs, color=["tab:blue" if i == SNEAKER else "lightgrey" for i in range(10)])
    axes[3].set_yticks(range(10), names, fontsize=7)
    axes[3].invert_yaxis()
    axes[3].set_title("$f(g(x; m_t))$: the ResNet's\nprobabilities (target: Sneaker)", fontsize=9)
    axes[3].tick_params(axis="x", labelsize=7)
    axes[4].text(0.5, 0.5, f"$L_{{cls}}$\n$= -\\log p_c$\n$= {loss:.2f}$", ha="center", va="center", fontsize=11)
    axes[4].set_axis_off()
    lim = abs(grad).max()
    axes[5].imshow(grad, cmap="RdBu", vmin=-lim, vmax=lim)
    axes[5].set_title("$\\nabla_x L$: back through f and g\n(only visible patches get any)", fontsize=9)
    axes[5].set_axis_off()
    for i, (a, b) in enumerate(zip(axes[:-1], axes[1:])):    # arrows between the panels (clear of the labels)
        fig.add_artist(matplotlib.patches.FancyArrowPatch(
            (a.get_position().x1 + 0.003, 0.45), (b.get_position().x0 - (0.06 if i == 2 else 0.003), 0.45),
            transform=fig.transFigure,
            arrowstyle="-|>", mutation_scale=12, color="dimgray"))
    start, end = axes[5].get_position(), axes[0].get_position()
    fig.add_artist(matplotlib.patches.FancyArrowPatch(
        ((start.x0 + start.x1) / 2, start.y0 - 0.02), ((end.x0 + end.x1) / 2, end.y0 - 0.02),
        transform=fig.transFigure, connectionstyle="arc3,rad=-0.12", arrowstyle="-|>", mutation_scale=12,
        color="tab:red"))
    fig.text(0.5, -0.06, "an Adam step on x; the next step draws a new mask", ha="center", fontsize=9,
             color="tab:red")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "book" / "figures" / "pipeline.png")
    a = p.parse_args(argv)
    bundle = load_bundle("fmnist")
    x, y, _ = load_sample_set("CaG full, 250 steps, x")          # the optimised x of a finished run
    draw(bundle, x[y == SNEAKER][:1], a.out)


if __name__ == "__main__":
    main()
