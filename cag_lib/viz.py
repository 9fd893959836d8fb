"""Pictures: image grids and labelled rows of grids (figures for the book and the demo)."""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid


def grid(images: torch.Tensor, nrow: int = 8, scale: int = 1, padding: int = 1) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> one (3, H', W') grid, each image enlarged `scale` times (nearest)."""
    x = images.detach().float().cpu().clamp(0, 1)
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return make_grid(x, nrow=nrow, padding=padding, pad_value=1.0)


def rows_figure(rows: dict, path: str | Path | None = None, title: str = "", scale: int = 2,
                columns: list | None = None):
    """A matplotlib figure with one labelled row per entry of rows {label: (B, C, H, W)}; saved if path.
    columns: labels over equal groups of columns (each row's B pictures split among them)."""
    import matplotlib.pyplot as plt

    grids = [grid(x, nrow=len(x), scale=scale) for x in rows.values()]
    width = grids[0].shape[2] / 80
    fig, axes = plt.subplots(len(grids), 1, figsize=(width + 1.6, sum(g.shape[1] for g in grids) / 80 + 0.5),
                             squeeze=False)
    for ax, (label, g) in zip(axes[:, 0], zip(rows, grids)):
        ax.imshow(g.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        for s in ax.spines.values():
            s.set_visible(False)
    if columns:
        if len(next(iter(rows.values()))) % len(columns):
            raise ValueError(f"{len(columns)} column labels cannot name equal groups of "
                             f"{len(next(iter(rows.values())))} pictures per row")
        pixels = grids[0].shape[2]
        for i, label in enumerate(columns):   # centred over its group, above the first row
            axes[0, 0].text((i + 0.5) * pixels / len(columns), -3, label, ha="center", va="bottom", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return fig


@torch.no_grad()
def mae_rows(mae, images: torch.Tensor, mask_ratio: float = 0.75, seed: int = 0) -> dict:
    """Rows showing what the MAE does: original, masked input, reconstruction (visible patches kept),
    and the decoder's output everywhere (visible positions predicted too)."""
    g = torch.Generator().manual_seed(seed)
    noise = mae.mask_noise(len(images), g, device="cpu").to(images.device)
    rec, mask = mae.reconstruct(images, mask_ratio, noise=noise, return_mask=True)
    dec = mae.reconstruct(images, mask_ratio, noise=noise, keep_visible=False)
    m = mae.mask_image(mask)                                    # (B, 1, H, W), 1 = masked
    masked = images * (1 - m) + 0.5 * m                         # masked patches shown grey
    return {"original": images, f"masked {mask_ratio:.0%}": masked, "reconstruction": rec,
            "decoder output": dec}


def animate(frames: list, labels: list | None = None, nrow: int = 10, scale: int = 2, interval: int = 200):
    """An inline HTML animation (matplotlib's jshtml: plays in notebooks and in the static book) of
    image batches over time: frames = [(B, C, H, W), ...], one grid per frame, labels = frame titles."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib import animation

    grids = [grid(f, nrow=nrow, scale=scale).permute(1, 2, 0).numpy() for f in frames]
    fig, ax = plt.subplots(figsize=(grids[0].shape[1] / 80, grids[0].shape[0] / 80 + 0.3))
    ax.set_axis_off()
    im = ax.imshow(grids[0], interpolation="nearest")
    title = ax.set_title(labels[0] if labels else "", fontsize=9)

    def show(i):
        im.set_data(grids[i])
        title.set_text(labels[i] if labels else "")
        return im, title
    anim = animation.FuncAnimation(fig, show, frames=len(grids), interval=interval, blit=False)
    # matplotlib links Font Awesome 4 from a CDN for its buttons' icons; the page's own (Jupyter's,
    # the book theme's) serve instead, so the animation needs no network
    html = HTML(re.sub(r"<link[^>]*font-awesome[^>]*>", "", anim.to_jshtml(default_mode="once")))
    plt.close(fig)
    return html
