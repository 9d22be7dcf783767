"""Fused ops shared by the SignBench methods, each with torch / Triton / native backends.

* ``sparsemax`` and ``sst_convert`` — HyperSign's SST converter (Sec. 2.3.2, Algorithm 1).
* ``hyper_modulate`` and ``HyperFusion`` — HyperSign's hypernetwork dynamic MLP (Sec. 2.2).
* ``masked_attention``, ``gated_blend``, ``GatedCrossAttention`` (SignFuse's CMFA, eqs. 6–11;
  also SignBind's gate-only fusion) and ``LocalWindowSelfAttention`` (HFA's window-7 encoder).

See ``harness.ops.dispatch`` for how a backend is chosen for a call.
"""

from harness.ops.attention import masked_attention, masked_attention_reference
from harness.ops.dispatch import (
    BACKENDS,
    BackendUnavailableError,
    availability,
    backends,
    default_backend,
    use_backend,
)
from harness.ops.gated_fusion import (
    GatedCrossAttention,
    LocalWindowSelfAttention,
    gated_blend,
    gated_blend_reference,
)
from harness.ops.hyper import HyperFusion, hyper_modulate, hyper_modulate_reference
from harness.ops.sparsemax import sparsemax, sparsemax_reference
from harness.ops.sst import sst_convert, sst_convert_reference

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "GatedCrossAttention",
    "HyperFusion",
    "LocalWindowSelfAttention",
    "availability",
    "backends",
    "default_backend",
    "gated_blend",
    "gated_blend_reference",
    "hyper_modulate",
    "hyper_modulate_reference",
    "masked_attention",
    "masked_attention_reference",
    "sparsemax",
    "sparsemax_reference",
    "sst_convert",
    "sst_convert_reference",
    "use_backend",
]
