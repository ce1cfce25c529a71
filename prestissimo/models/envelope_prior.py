"""The envelope prior: a small text -> envelope DiT that lays out where the notes fall.

Why: a DiT that generates envelope channels beside its latents follows an envelope it is given (the
clip's own, held during sampling: beat regularity 0.60 against 0.76 for the clips themselves) but does
not lay one out itself (0.21, tempo class right a third of the time: chance). A second, much smaller
DiT trained on the envelopes alone, pooled to a few thousand numbers per clip, takes several times more
steps in the same CPU minutes and keeps the prompt's tempo (right 93% of the time); its envelope,
held in the main DiT, gives audio that keeps it too (docs/training.md, "Envelope channels"). It
reads only a frozen text encoder, so it can be trained before, beside or after the main DiT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prestissimo.models.config import EnvelopePriorSpec
from prestissimo.models.denoiser import Conditioning
from prestissimo.models.dit import DiffusionTransformer
from prestissimo.sampling.guidance import cfg_denoiser, null_conditioning
from prestissimo.sampling.samplers import sample_euler
from prestissimo.sampling.schedules import linear_schedule


def pool_frames(envelope: torch.Tensor, pool: int) -> torch.Tensor:
    """[B, bands, L] -> [B, bands, L // pool]: the mean of each run of ``pool`` frames."""
    frames = envelope.shape[-1] // pool
    return envelope[..., : frames * pool].reshape(*envelope.shape[:-1], frames, pool).mean(-1)


def upsample_frames(envelope: torch.Tensor, pool: int) -> torch.Tensor:
    """[B, bands, F] -> [B, bands, F * pool] by linear interpolation (half-pixel centres, edges held),
    the inverse of :func:`pool_frames` up to the detail pooling removed."""
    return F.interpolate(envelope, scale_factor=pool, mode="linear", align_corners=False)


class EnvelopePrior(nn.Module):
    """Rectified flow on pooled envelope channels, conditioned on one text conditioner's output:
    its tokens (cross-attention) and their masked mean (adaLN)."""

    def __init__(self, spec: EnvelopePriorSpec):
        super().__init__()
        self.spec = spec
        self.net = DiffusionTransformer(spec.dit)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(x, t, cross_attn_cond=tokens, global_cond=pooled)

    def loss(self, envelope: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor,
             pooled: torch.Tensor) -> torch.Tensor:
        """Per-item flow-matching loss on pooled envelopes [B, bands, F]: |v - (noise - x0)|^2."""
        level = t.view(-1, 1, 1)
        v = self.velocity((1 - level) * envelope + level * noise, t, tokens, pooled)
        return ((v.float() - (noise - envelope).float()) ** 2).mean(dim=(1, 2))

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, tokens: torch.Tensor, pooled: torch.Tensor, steps: int | None = None,
               cfg_scale: float | None = None) -> torch.Tensor:
        """Pooled envelopes [B, bands, F] from noise of that shape; Euler with classifier-free guidance
        (the unconditional input: zero tokens and a zero pooled prompt, as in training's dropout). The
        tokens are embedded once, not at every step."""
        steps = self.spec.steps if steps is None else steps
        scale = self.spec.cfg_scale if cfg_scale is None else cfg_scale
        dtype = next(self.parameters()).dtype
        cond = Conditioning(context=self.net.embed_context(tokens.to(dtype)), global_cond=pooled.to(dtype),
                            global_prompt_mask=torch.ones(pooled.shape[-1], dtype=torch.bool, device=pooled.device))

        def x0(x: torch.Tensor, t: torch.Tensor, c: Conditioning) -> torch.Tensor:
            v = self.net(x.to(dtype), t.to(dtype), global_cond=c.global_cond, context=c.context)
            return x - t.view(-1, 1, 1) * v.to(x.dtype)

        denoise = cfg_denoiser(x0, cond, null_conditioning(cond), scale)
        return sample_euler(denoise, noise, linear_schedule(steps).to(noise.device), "rectified_flow")


def layout_envelope(prior_envelope: torch.Tensor, spec: EnvelopePriorSpec, latent_length: int, audible_frames: int,
                    silence: torch.Tensor) -> torch.Tensor:
    """The prior's pooled envelope -> the main DiT's envelope channels [B, bands, latent_length]:
    upsampled, and silent from ``audible_frames`` on (past the requested seconds, as in the training data)."""
    env = upsample_frames(prior_envelope, spec.pool)[..., :latent_length]
    quiet = torch.arange(latent_length, device=env.device) >= audible_frames
    return torch.where(quiet, silence.to(env).view(1, -1, 1), env)
