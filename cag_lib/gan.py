"""A small class-conditional GAN (DCGAN-style): the third kind of generator the book compares.

Generator G(z, c): a noise vector z (B, Z) and a class embedding, through transposed convolutions
4x4 -> 8x8 -> 16x16 -> 32x32, to an image in [0, 1]. Discriminator D(x, c): strided
convolutions to a feature vector h(x), and the projection discriminator's score
w . h(x) + embed(c) . h(x) (Miyato & Koyama 2018): high for real images of class c. Trained with
the hinge loss and spectral normalisation in D, by `python -m cag_lib.train gan` (the zoo's
manifest holds the command). Sampling is one forward pass of G.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


class Generator(nn.Module):
    def __init__(self, num_classes: int, in_chans: int = 1, z_dim: int = 64, width: int = 64):
        super().__init__()
        self.z_dim, self.width = z_dim, width
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Linear(2 * z_dim, 4 * 4 * 4 * width)

        def up(cin, cout):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU(True))
        self.body = nn.Sequential(nn.BatchNorm2d(4 * width), nn.ReLU(True), up(4 * width, 2 * width),
                                  up(2 * width, width), nn.ConvTranspose2d(width, in_chans, 4, 2, 1))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:   # (B, Z), (B,) -> (B, C, 32, 32)
        h = self.fc(torch.cat([z, self.embed(c)], 1)).view(len(z), 4 * self.width, 4, 4)
        return torch.sigmoid(self.body(h))


class Discriminator(nn.Module):
    def __init__(self, num_classes: int, in_chans: int = 1, width: int = 64):
        super().__init__()
        def down(cin, cout):
            return nn.Sequential(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, True))
        self.body = nn.Sequential(down(in_chans, width), down(width, 2 * width), down(2 * width, 4 * width))
        self.linear = spectral_norm(nn.Linear(4 * width, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, 4 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:   # (B, C, 32, 32), (B,) -> (B,)
        h = self.body(x * 2 - 1).sum((2, 3))                               # (B, 4 width)
        return self.linear(h)[:, 0] + (self.embed(c) * h).sum(1)


class ConditionalGAN(nn.Module):
    """G and D together (the zoo stores both); `sample` needs only G."""

    def __init__(self, class_names, in_chans: int = 1, img_size: int = 32, z_dim: int = 64, width: int = 32):
        super().__init__()
        if img_size != 32:
            raise ValueError("the small GAN makes 32x32 images")
        self.class_names, self.in_chans, self.img_size = tuple(class_names), in_chans, img_size
        self.config = dict(class_names=list(class_names), in_chans=in_chans, img_size=img_size, z_dim=z_dim,
                           width=width)
        self.generator = Generator(len(class_names), in_chans, z_dim, width)
        self.discriminator = Discriminator(len(class_names), in_chans, width)
        self.d_opt = None   # the discriminator's own Adam, made on the first training step

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    def discriminator_step(self, x: torch.Tensor, c: torch.Tensor, g: torch.Generator, lr: float) -> float:
        """One hinge-loss step of D on real images x of classes c and as many fakes; returns D's loss."""
        if self.d_opt is None:
            self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.0, 0.9))
        with torch.no_grad():
            fake = self.generator(torch.randn(len(x), self.z_dim, generator=g).to(x.device), c)
        loss = F.relu(1 - self.discriminator(x, c)).mean() + F.relu(1 + self.discriminator(fake, c)).mean()
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        return float(loss.detach())

    def generator_loss(self, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The hinge loss of G: -D(G(z, c), c), for fresh noise."""
        z = torch.randn(len(c), self.z_dim, generator=g).to(c.device)
        return -self.discriminator(self.generator(z, c), c).mean()

    @torch.no_grad()
    def sample(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Images (B, C, 32, 32) in [0, 1] for noise z (B, Z) and classes c (B,), in eval mode."""
        was = self.generator.training
        self.generator.eval()
        out = self.generator(z, c)
        self.generator.train(was)
        return out
