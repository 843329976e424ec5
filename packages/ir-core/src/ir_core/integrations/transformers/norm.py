"""The module that replaces a Hugging Face RMSNorm: the same weight, one ``rms_norm`` call."""

from __future__ import annotations

import torch
from torch import nn

from ... import ops
from .forms import Form


class IRRMSNorm(nn.Module):
    """``ir_core.ops.rms_norm`` with the weight (the same ``Parameter``) of the module it replaces.

    ``state_dict`` keys are unchanged (the weight is still ``weight``), and ``model.to(...)``
    converts the shared parameter for both. The replaced module is kept outside the module
    tree (not a submodule, so its weight is not listed twice) for :func:`unpatch`.

    ``LLAMA``-form norms return the promoted dtype of input and weight (an fp32 weight makes an
    fp32 output), as the replaced module did: the input is widened first, so the result is
    rounded once, to that dtype.
    """

    def __init__(self, replaced: nn.Module, form: Form, epsilon: float) -> None:
        super().__init__()
        weight = None if form is Form.UNWEIGHTED else replaced.weight
        if weight is None or isinstance(weight, nn.Parameter):
            self.register_parameter("weight", weight)
        else:  # a weight the replaced module holds as a buffer
            self.register_buffer("weight", weight)
        self.form = form
        self.epsilon = epsilon
        self.weight_bias = form.weight_bias
        self.__dict__["replaced"] = replaced

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if self.form is Form.LLAMA and weight.dtype != hidden_states.dtype:
            dtype = torch.promote_types(hidden_states.dtype, weight.dtype)
            hidden_states = hidden_states.to(dtype)
        return ops.rms_norm(hidden_states, weight, self.epsilon, self.weight_bias)

    def extra_repr(self) -> str:
        width = None if self.weight is None else tuple(self.weight.shape)
        was = type(self.replaced).__name__
        return f"{width}, eps={self.epsilon}, form={self.form.name}, was {was}"
