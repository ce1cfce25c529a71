"""Networks (Oobleck autoencoder, DiT, conditioners), their configs and checkpoint loading."""

from .autoencoder import OobleckAutoencoder
from .conditioners import MultiConditioner, NumberConditioner, T5Conditioner
from .config import AutoencoderConfig, ConfigError, DiTConfig, ModelConfig
from .denoiser import Conditioning, Denoiser
from .dit import DiffusionTransformer
from .loading import ModelLoadError

__all__ = ["AutoencoderConfig", "Conditioning", "ConfigError", "Denoiser", "DiTConfig", "DiffusionTransformer",
           "ModelConfig", "ModelLoadError", "MultiConditioner", "NumberConditioner", "OobleckAutoencoder",
           "T5Conditioner"]
