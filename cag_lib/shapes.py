"""A procedural world of coloured shapes with captions, for text-to-image on a laptop.

Every image is one shape (8 kinds) of one colour on a background of another colour, with a random
size (two named bins), position, rotation and a little colour jitter. Everything is drawn from a
seeded numpy Generator, so the same seed gives the same images and captions, at 32x32 or 64x64.
Shapes are drawn at 4x the size and box-downsampled, which anti-aliases their edges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "moon", "arrow")
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (40, 70, 225), "yellow": (240, 215, 30),
           "purple": (135, 45, 175), "orange": (245, 130, 20), "white": (240, 240, 240), "black": (25, 25, 25)}
COLOUR_NAMES = tuple(COLOURS)
SIZES = {"small": (0.20, 0.28), "large": (0.32, 0.42)}  # shape radius as a fraction of the image side
SIZE_NAMES = tuple(SIZES)
ATTRIBUTES = {"shape": SHAPES, "colour": COLOUR_NAMES, "background": COLOUR_NAMES, "size": SIZE_NAMES}
# (colour, shape, background) scenes the shapes CLIP never sees as a caption in training: the
# compositional test of text-to-image (chapter 8). Every word in them is seen in other combinations.
HELD_OUT = (("red", "star", "blue"), ("green", "heart", "yellow"), ("blue", "moon", "white"),
            ("yellow", "cross", "purple"), ("purple", "arrow", "orange"), ("orange", "triangle", "black"),
            ("white", "circle", "red"), ("black", "square", "green"), ("red", "moon", "black"),
            ("blue", "heart", "orange"))
# (colour, shape, background) scenes the CLIP does see in training, one per shape: the sampler's knobs for
# text-to-image are chosen on these (benchmarks/text_to_image.py --prompts seen), never on HELD_OUT.
TUNING = (("blue", "star", "red"), ("yellow", "heart", "green"), ("white", "moon", "blue"),
          ("purple", "cross", "yellow"), ("orange", "arrow", "purple"), ("black", "triangle", "orange"),
          ("red", "circle", "white"), ("green", "square", "black"))


@dataclass(frozen=True)
class ShapeSpec:
    shape: str
    colour: str
    background: str
    size: str
    radius: float       # fraction of the image side
    cx: float           # centre, fraction of the image side
    cy: float
    angle: float        # radians
    jitter: tuple       # per-channel offsets added to the fg and bg colours, 6 ints

    @property
    def caption(self) -> str:
        return f"a {self.size} {self.colour} {self.shape} on a {self.background} background"


def _outline(shape: str) -> list[np.ndarray]:
    """Polygons of a shape in unit coordinates (radius about 1, centred at 0); later ones are holes."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "circle":
        return [circle]
    if shape == "square":
        return [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.82]
    if shape == "triangle":
        a = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return [np.stack([np.cos(a), -np.sin(a)], 1) * 1.05 + [0, 0.15]]
    if shape == "star":
        a = np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.05, 0.45)
        return [np.stack([r * np.cos(a), -r * np.sin(a)], 1)]
    if shape == "cross":
        w = 0.32
        return [np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1],
                          [-w, w], [-1, w], [-1, -w], [-w, -w]]) * 0.95]
    if shape == "heart":
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return [np.stack([x, -y], 1) / 16 + [0, 0.05]]
    if shape == "moon":
        return [circle, circle * 0.85 + [0.45, -0.25]]
    if shape == "arrow":
        return [np.array([[-1, -0.28], [0.15, -0.28], [0.15, -0.7], [1, 0], [0.15, 0.7], [0.15, 0.28],
                          [-1, 0.28]])]
    raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")


def _check(name, value, valid):
    if value is not None and value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid {name}s: {', '.join(valid)}")


def sample_spec(rng: np.random.Generator, shape=None, colour=None, background=None, size=None) -> ShapeSpec:
    """Draw one random scene; any attribute given is fixed, the rest are random."""
    for name, v, valid in (("shape", shape, SHAPES), ("colour", colour, COLOUR_NAMES),
                           ("colour", background, COLOUR_NAMES), ("size", size, SIZE_NAMES)):
        _check(name, v, valid)
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    colour = colour or COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    if background is None:
        others = [c for c in COLOUR_NAMES if c != colour]
        background = others[rng.integers(len(others))]
    if background == colour:
        raise ValueError(f"shape and background must differ (both {colour!r})")
    size = size or SIZE_NAMES[rng.integers(len(SIZE_NAMES))]
    radius = rng.uniform(*SIZES[size])
    cx, cy = rng.uniform(radius + 0.04, 0.96 - radius, size=2)
    return ShapeSpec(shape, colour, background, size, float(radius), float(cx), float(cy),
                     float(rng.uniform(0, 2 * np.pi)), tuple(int(v) for v in rng.integers(-15, 16, size=6)))


def render(spec: ShapeSpec, size: int = 32, supersample: int = 4) -> np.ndarray:
    """The scene as a uint8 array (size, size, 3)."""
    big = size * supersample
    fg = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[spec.colour], spec.jitter[:3]))
    bg = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[spec.background], spec.jitter[3:]))
    img = Image.new("RGB", (big, big), bg)
    draw = ImageDraw.Draw(img)
    rot = np.array([[np.cos(spec.angle), -np.sin(spec.angle)], [np.sin(spec.angle), np.cos(spec.angle)]])
    for i, poly in enumerate(_outline(spec.shape)):
        pts = (poly @ rot.T) * spec.radius * big + [spec.cx * big, spec.cy * big]
        draw.polygon([tuple(p) for p in pts], fill=fg if i == 0 else bg)
    return np.asarray(img.resize((size, size), Image.BOX))


@dataclass
class ShapesData:
    images: torch.Tensor            # (N, 3, H, W) float in [0, 1]
    labels: dict                    # attribute name -> (N,) int64, indices into SHAPES / COLOUR_NAMES / SIZE_NAMES
    captions: list
    specs: list

    def __len__(self):
        return len(self.captions)


def make_shapes(n: int, seed: int = 0, size: int = 32, **fixed) -> ShapesData:
    """n random scenes drawn with `seed`; keyword attributes (shape=, colour=, ...) are held fixed."""
    if n <= 0:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    specs = [sample_spec(rng, **fixed) for _ in range(n)]
    images = np.stack([render(s, size) for s in specs])                       # (N, H, W, 3) uint8
    images = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)   # (N, 3, H, W)
    labels = {"shape": torch.tensor([SHAPES.index(s.shape) for s in specs]),
              "colour": torch.tensor([COLOUR_NAMES.index(s.colour) for s in specs]),
              "background": torch.tensor([COLOUR_NAMES.index(s.background) for s in specs]),
              "size": torch.tensor([SIZE_NAMES.index(s.size) for s in specs])}
    return ShapesData(images, labels, [s.caption for s in specs], specs)


def scene_prompt(colour: str, shape: str, background: str) -> str:
    """The size-free caption of a scene, the class name text-to-image uses."""
    return f"{colour} {shape} on a {background} background"


def scene_triple(prompt: str) -> tuple[str, str, str]:
    """The inverse of scene_prompt: "red star on a blue background" -> ("red", "star", "blue")."""
    words = prompt.split()
    if len(words) != 6 or words[2:4] != ["on", "a"] or words[5] != "background":
        raise ValueError(f"{prompt!r} is not a scene prompt like 'red star on a blue background'")
    return words[0], words[1], words[4]


def held_out_mask(data: "ShapesData") -> torch.Tensor:
    """(N,) bool: which scenes are one of HELD_OUT."""
    held = {(COLOUR_NAMES.index(c), SHAPES.index(s), COLOUR_NAMES.index(b)) for c, s, b in HELD_OUT}
    triples = zip(data.labels["colour"].tolist(), data.labels["shape"].tolist(), data.labels["background"].tolist())
    return torch.tensor([t in held for t in triples], dtype=torch.bool)


# Fixed splits: different seeds, so train and test scenes are independent draws.
SPLITS = {"train": (40_000, 0), "test": (5_000, 1)}


def load_shapes(split: str = "train", size: int = 32, n: int | None = None) -> ShapesData:
    """The standard split used to train and test the shapes bundle (the first n scenes if n is given)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, not {split!r}")
    total, seed = SPLITS[split]
    return make_shapes(n or total, seed=seed, size=size)
