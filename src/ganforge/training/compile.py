"""torch.compile of the G and D forward passes, with an eager fallback."""
from __future__ import annotations

import warnings

import torch
from torch import nn


class CompiledOrEager:
    """`torch.compile(module)`'s forward; if compiling fails (no C compiler, an unsupported op, a compiler bug),
    warn once and run the plain module from then on. The parameters are the module's own either way.

    torch.compile builds a graph at the first call of each kind (grad on or off, weights trainable or frozen),
    but its backward only at the first backward, after this call has returned. So each new kind of call is
    first tried here, forward and backward, on a throw-away pass (buffers such as BN statistics restored),
    where a failure can still fall back.
    """

    def __init__(self, module: nn.Module):
        self.module, self.compiled, self.failed = module, torch.compile(module), False
        self._tried: set[tuple] = set()

    def __call__(self, *args):
        if not self.failed:
            try:
                kind = (torch.is_grad_enabled(), tuple(p.requires_grad for p in self.module.parameters()),
                        tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args))
                if kind not in self._tried:
                    self._try(args)
                    self._tried.add(kind)
                return self.compiled(*args)
            except Exception as e:
                self.failed = True
                first = (str(e).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"torch.compile failed for {type(self.module).__name__} ({type(e).__name__}: {first}); "
                              "training eagerly", RuntimeWarning, stacklevel=2)
        return self.module(*args)

    def _try(self, args) -> None:
        saved = [b.clone() for b in self.module.buffers()]
        args = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in args]
        out = self.compiled(*args)
        leaves = [p for p in self.module.parameters() if p.requires_grad] + \
                 [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
        if out.requires_grad and leaves:
            torch.autograd.grad(out.float().sum(), leaves, allow_unused=True)
        with torch.no_grad():
            for b, v in zip(self.module.buffers(), saved):
                b.copy_(v)
