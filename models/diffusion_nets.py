"""The raw network F of the diffusion plugin (:mod:`.diffusion`): a small class-conditional UNet.

The DDPM UNet (Ho et al. 2020, arXiv:2006.11239, app. B) as EDM's DDPM++ / ADM use it (Karras et al.
2022, arXiv:2206.00364, app. F.2; Dhariwal & Nichol 2021, arXiv:2105.05233): pre-activation residual
blocks (GroupNorm, SiLU, 3x3 conv) with the noise-and-class embedding added between the two convs,
``blocks`` of them per resolution, multi-head self-attention at the resolutions listed in ``attn_levels``,
a stride-2 conv down and a nearest x2 + 3x3 conv up (no checkerboard, Odena et al. 2016), skip
connections concatenated in the decoder (``blocks + 1`` blocks per level), residual sums scaled by
1/sqrt(2) (DDPM++), and zero-initialized last layers (every block starts as the identity and F as 0).

Conditioning (EDM's F(c_in x; c_noise, c)): c_noise (float N) -> sinusoidal features (ch channels,
frequencies 1 .. 1e-4, as EDM's positional embedding) -> Linear-SiLU-Linear (4 ch); the class enters as
``nn.Embedding(K + 1, 4 ch)`` added to it, index K being the "null" class of classifier-free guidance
(Ho & Salimans 2022, arXiv:2207.12598).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SKIP_SCALE = 1 / math.sqrt(2)


def groups_for(channels: int) -> int:
    """GroupNorm groups: the largest divisor of ``channels`` that is at most 32 and leaves at least 4
    channels per group (EDM's ``GroupNorm(min_channels_per_group=4)``, made to divide)."""
    g = max(1, min(32, channels // 4))
    while channels % g:
        g -= 1
    return g


def zero_(module: nn.Module) -> nn.Module:
    """Zero ``module``'s parameters in place (the block starts as the identity); returns it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def sinusoidal(c_noise: torch.Tensor, channels: int, max_positions: float = 10000.0) -> torch.Tensor:
    """Positional features [cos(c_noise f_i) | sin(c_noise f_i)], f_i = max_positions^(-i / (channels/2 - 1))
    (Vaswani et al. 2017; EDM ``PositionalEmbedding(endpoint=True)``): float32 N x ``channels``."""
    half = channels // 2
    freqs = max_positions ** (-torch.arange(half, dtype=torch.float32, device=c_noise.device) / max(half - 1, 1))
    arg = c_noise.float()[:, None] * freqs[None]
    return torch.cat([arg.cos(), arg.sin()], dim=1)


class ResBlock(nn.Module):
    """x -> (x' + skip(x)) / sqrt(2), x' = conv(drop(act(norm(conv(act(norm(x))) + emb)))): N x C_in x H x W
    -> N x C_out x H x W; ``emb`` float N x E is projected to C_out and added (DDPM, ``adaptive_scale=False``)."""

    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.norm0, self.conv0 = nn.GroupNorm(groups_for(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.affine = nn.Linear(emb, c_out)
        self.norm1, self.drop = nn.GroupNorm(groups_for(c_out), c_out), nn.Dropout(dropout)
        self.conv1 = zero_(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.affine(emb)[:, :, None, None].to(h.dtype)
        h = self.conv1(self.drop(F.silu(self.norm1(h))))
        return (h + self.skip(x)) * SKIP_SCALE


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions (heads of ``head_dim`` channels), residual and
    scaled by 1/sqrt(2): N x C x H x W -> the same (``F.scaled_dot_product_attention``)."""

    def __init__(self, channels: int, head_dim: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(groups_for(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # N x heads x HW x C/heads
        return (x + self.proj(a.transpose(-1, -2).reshape(n, c, h, w))) * SKIP_SCALE


class Level(nn.Module):
    """One resolution of the UNet: residual blocks, each followed by self-attention when ``attn``."""

    def __init__(self, c_ins: list[int], c_out: int, emb: int, dropout: float, attn: bool, head_dim: int) -> None:
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c, c_out, emb, dropout) for c in c_ins)
        self.attn = nn.ModuleList(SelfAttention(c_out, head_dim) if attn else nn.Identity() for _ in c_ins)


class UNet(nn.Module):
    """F(x; c_noise, c): float N x C x H x W, float N, int64 N labels in 0..K (K = null) -> N x C x H x W.

    Widths ``ch * mult[i]`` at resolution i (H / 2**i; H, W divisible by 2**(len(mult) - 1)), ``blocks``
    residual blocks per resolution in the encoder and ``blocks + 1`` in the decoder, self-attention after
    each block of the resolutions in ``attn_levels`` (0 = full size) and in the middle (ADM's middle
    block: res, attn, res).
    """

    def __init__(self, channels: int, num_classes: int, ch: int, mult: tuple[int, ...], blocks: int,
                 attn_levels: tuple[int, ...], dropout: float, head_dim: int = 64) -> None:
        super().__init__()
        emb, widths = 4 * ch, [ch * m for m in mult]
        self.ch = ch
        self.noise_mlp = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_emb = nn.Embedding(num_classes + 1, emb)
        self.conv_in = nn.Conv2d(channels, ch, 3, padding=1)
        skips, c, self.down, self.downsample = [ch], ch, nn.ModuleList(), nn.ModuleList()
        for i, w in enumerate(widths):
            self.down.append(Level([c] + [w] * (blocks - 1), w, emb, dropout, i in attn_levels, head_dim))
            skips += [w] * blocks
            c = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
                skips.append(w)
        self.mid = Level([c, c], c, emb, dropout, False, head_dim)
        self.mid_attn = SelfAttention(c, head_dim)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            c_ins = [c + skips.pop()] + [w + skips.pop() for _ in range(blocks)]
            self.up.append(Level(c_ins, w, emb, dropout, i in attn_levels, head_dim))
            c = w
            if i > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(w, w, 3, padding=1)))
        self.out = nn.Sequential(nn.GroupNorm(groups_for(c), c), nn.SiLU(), zero_(nn.Conv2d(c, channels, 3, padding=1)))

    def embed(self, c_noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The block conditioning: MLP(sinusoidal(c_noise)) + class embedding, float32 N x 4 ch."""
        return self.noise_mlp(sinusoidal(c_noise, self.ch)) + self.class_emb(labels)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.embed(c_noise, labels)
        h = self.conv_in(x)
        hs = [h]
        for i, level in enumerate(self.down):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(h, emb))
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid.res[1](self.mid_attn(self.mid.res[0](h, emb)), emb)
        for i, level in enumerate(self.up):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, hs.pop()], dim=1), emb))
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.out(h)
