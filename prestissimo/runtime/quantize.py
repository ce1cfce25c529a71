"""int8 dynamic quantization of linear layers (weights int8 per tensor, activations quantized on the fly).

PyTorch's eager dynamic quantization (fbgemm on x86) is used: it needs no calibration data and keeps
accuracy within a few percent on the DiT (tested), the trade the ARC paper's edge deployment made.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def quantize_linear_int8(module: nn.Module) -> nn.Module:
    """A quantized copy of ``module`` with every nn.Linear replaced by a dynamic int8 linear."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(module).float().eval(), {nn.Linear}, dtype=torch.qint8)
