"""Samplers, schedules and guidance: turning a denoiser into clean latents."""

from ..request import SAMPLERS
from .guidance import cfg_denoiser, null_conditioning
from .samplers import sample_dpmpp_2m, sample_euler, sample_pingpong
from .schedules import linear_schedule, logsnr_schedule


__all__ = ["SAMPLERS", "cfg_denoiser", "null_conditioning", "sample_dpmpp_2m", "sample_euler",
           "sample_pingpong", "linear_schedule", "logsnr_schedule"]
