"""The conformance kit: does a provider honour every op it implements?

Run it with pytest (one test per check, sample, dtype and device)::

    pytest --pyargs ir_core.conformance --ir-provider NAME [--ir-op OP] [--ir-dtype bf16]

or from the command line (a summary table, exit 1 on any failure)::

    ir-core check --provider NAME [--json]

For each op the provider implements, on each device type it declares that this machine has,
in each of fp32/fp16/bf16 it claims, on each of the op's ``sample_inputs``:

- ``numerics``: outputs match native within the op's tolerance (a failure gives the max error,
  where it is, and the tolerance);
- ``mutation``: the inputs are left untouched;
- ``supports_args``: a plain ``bool``, the same on real tensors, FakeTensors and symbolic token
  counts, with no guard added;
- ``capabilities``: the capability tags the kit can check hold bitwise (``deterministic``: a
  second run gives the same bits; ``batch_invariant``: each row's bits are the same when the
  impl runs on fewer rows); other tags are taken on trust;
- ``opcheck``: under ``set_priority`` dispatch picks the provider and ``torch.library.opcheck``
  passes on ``torch.ops.ir_core.<op>``;
- ``compile`` (once per target): a function calling the op, compiled under ``set_priority``,
  is lowered to the provider and matches native.

A dtype whose samples ``supports_args`` declines entirely is *not claimed*: reported, not failed.
The pytest options and fixtures live in :mod:`ir_core.conformance.plugin`, which is active only
when pytest is asked to run this package, so unrelated test runs never see them.
"""

from __future__ import annotations

from .checks import CHECK_NAMES
from .errors import CheckFailed, CheckSkipped, ProviderUnusable
from .runner import CheckResult, Report, run
from .targets import DTYPES, Case, Target, TargetPlan, plan, runnable_providers

__all__ = [
    "CHECK_NAMES",
    "DTYPES",
    "Case",
    "CheckFailed",
    "CheckResult",
    "CheckSkipped",
    "ProviderUnusable",
    "Report",
    "Target",
    "TargetPlan",
    "plan",
    "run",
    "runnable_providers",
]
