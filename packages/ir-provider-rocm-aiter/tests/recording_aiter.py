"""Recorders standing in for the ``aiter`` module, one per AITER API generation.

Each entry point has the parameter names of the real one in that generation (``probe`` reads
signatures), records how it was called, and computes its result in fp32 with torch, writing
into out parameters or normalising in place exactly where the real kernel does. That lets the
tests check both what AITER receives and that the wrappers return the right values without
touching their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch


@dataclass
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _norm(x: torch.Tensor, w: torch.Tensor, eps: float, gemma: bool) -> torch.Tensor:
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * (w.float() + (1.0 if gemma else 0.0))).to(x.dtype)


@dataclass
class RecordingAiter:
    """The recorded calls plus the module attributes of one generation (see :func:`build`)."""

    generation: str
    calls: list[Call] = field(default_factory=list)

    def record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(Call(name, args, dict(kwargs)))

    @property
    def only_call(self) -> Call:
        assert len(self.calls) == 1, f"expected one AITER call, got {self.calls}"
        return self.calls[0]


GENERATIONS = ("0.1.13", "0.1.16", "0.1.17", "private-only")


def build(generation: str, opus: str | None = None) -> RecordingAiter:
    """A recorder with the entry points of ``generation``:

    - ``0.1.13``: legacy public ``fused_qk_rmsnorm(q, q_weight, q_eps, k, k_weight, k_eps)``
      that normalises q and k in place and returns them; no ``gemma_norm`` anywhere.
    - ``0.1.16``: unified public ``fused_qk_rmsnorm`` with out params (after ROCm/aiter#2958)
      and the private ``_fused_qk_rmsnorm``; still no ``gemma_norm`` on the norms.
    - ``0.1.17``: as 0.1.16, plus ``gemma_norm`` on ``rmsnorm2d_fwd_with_add`` (7th, before
      ``use_model_sensitive_rmsnorm``) and on ``rmsnorm`` (5th).
    - ``private-only``: no public fused q/k entry point, only the private one.

    ``opus`` adds the opus kernels (``rms_norm_opus``): ``"sole"`` as in releases where they
    serve every plain norm, ``"opus"``/``"ck"`` as the answer of ``get_rmsnorm_backend()`` in
    the releases where the AITER_RMSNORM_BACKEND variable chooses.
    """
    rec = RecordingAiter(generation)
    gemma = generation == "0.1.17"

    def rms_norm(input, weight, epsilon, use_model_sensitive_rmsnorm=0):
        rec.record("rms_norm", (input, weight, epsilon), {})
        return _norm(input, weight, epsilon, False)

    if gemma:

        def rmsnorm(out, input, weight, epsilon, gemma_norm=False):
            rec.record("rmsnorm", (out, input, weight, epsilon, gemma_norm), {})
            out.copy_(_norm(input, weight, epsilon, gemma_norm))

        def rmsnorm2d_fwd_with_add(
            out,
            input,
            residual_in,
            residual_out,
            weight,
            epsilon,
            gemma_norm=False,
            use_model_sensitive_rmsnorm=0,
        ):
            kwargs = {"gemma_norm": gemma_norm} if gemma_norm else {}
            rec.record(
                "rmsnorm2d_fwd_with_add",
                (out, input, residual_in, residual_out, weight, epsilon),
                kwargs,
            )
            s = input.float() + residual_in.float()
            residual_out.copy_(s)
            out.copy_(_norm(s, weight, epsilon, gemma_norm))

    else:

        def rmsnorm(out, input, weight, epsilon):
            rec.record("rmsnorm", (out, input, weight, epsilon), {})
            out.copy_(_norm(input, weight, epsilon, False))

        def rmsnorm2d_fwd_with_add(
            out,
            input,
            residual_in,
            residual_out,
            weight,
            epsilon,
            use_model_sensitive_rmsnorm=0,
        ):
            rec.record(
                "rmsnorm2d_fwd_with_add",
                (out, input, residual_in, residual_out, weight, epsilon),
                {},
            )
            s = input.float() + residual_in.float()
            residual_out.copy_(s)
            out.copy_(_norm(s, weight, epsilon, False))

    def legacy_fused_qk_rmsnorm(q, q_weight, q_eps, k, k_weight, k_eps):
        rec.record("fused_qk_rmsnorm", (q, q_weight, q_eps, k, k_weight, k_eps), {})
        q.copy_(_norm(q, q_weight, q_eps, False))  # in place, as some builds do
        k.copy_(_norm(k, k_weight, k_eps, False))
        return q, k

    def fused_qk_rmsnorm(
        q_out_quantized=None,
        q_out_scale=None,
        q=None,
        q_weight=None,
        q_epsilon=1e-6,
        q_out_unquantized=None,
        k_out=None,
        q_res_out=None,
        k=None,
        k_weight=None,
        k_epsilon=None,
        q_residual=None,
        gemma_norm=False,
        quant_type=None,
        group_size=None,
        transpose_scale=False,
    ):
        rec.record(
            "fused_qk_rmsnorm",
            (),
            {
                "q_out_quantized": q_out_quantized,
                "q": q,
                "q_weight": q_weight,
                "q_epsilon": q_epsilon,
                "k_out": k_out,
                "k": k,
                "k_weight": k_weight,
                "k_epsilon": k_epsilon,
            },
        )
        q_out_quantized.copy_(_norm(q, q_weight, q_epsilon, False))
        k_out.copy_(_norm(k, k_weight, k_epsilon, False))

    def _fused_qk_rmsnorm(q_out, q, q_weight, q_eps, k_out, k, k_weight, k_eps):
        rec.record("_fused_qk_rmsnorm", (q_out, q, q_weight, q_eps, k_out, k, k_weight, k_eps), {})
        q_out.copy_(_norm(q, q_weight, q_eps, False))
        k_out.copy_(_norm(k, k_weight, k_eps, False))
        return q_out, k_out

    rec.rms_norm = rms_norm  # type: ignore[attr-defined]
    rec.rmsnorm = rmsnorm  # type: ignore[attr-defined]
    rec.rmsnorm2d_fwd_with_add = rmsnorm2d_fwd_with_add  # type: ignore[attr-defined]
    if generation == "0.1.13":
        rec.fused_qk_rmsnorm = legacy_fused_qk_rmsnorm  # type: ignore[attr-defined]
    elif generation in ("0.1.16", "0.1.17"):
        rec.fused_qk_rmsnorm = fused_qk_rmsnorm  # type: ignore[attr-defined]
    if opus is not None:
        rec.rms_norm_opus = lambda *args, **kwargs: None  # type: ignore[attr-defined]
        if opus != "sole":
            rec.get_rmsnorm_backend = lambda: opus  # type: ignore[attr-defined]
    if generation != "0.1.13":
        rec.ops = SimpleNamespace(  # type: ignore[attr-defined]
            fused_qk_norm_rope_cache_quant=SimpleNamespace(_fused_qk_rmsnorm=_fused_qk_rmsnorm)
        )
    return rec
