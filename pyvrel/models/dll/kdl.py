"""Knowledge decoupling learning (KDL, paper §3.3, code ``get_KDL_loss``, §4.2 of ``shared/specs/models.md``).

A learnable predicate correlation matrix ``C (P, P)`` (rows are logits; initialised to the
identity, as the paper says) and the model learn from each other on the *non-target* part of
every positive ``(sample i, predicate j)``:

* ``p_res = log_softmax(logits[i] without j)``;
* head-to-tail transfer: ``h_sp`` is a random predicate sharing j's spatial pattern and more
  frequent than j in training (j itself if none; absent when j has no spatial pattern), ``h_act``
  likewise for the actional pattern; ``q = mean(C[h_sp], C[h_act])``,
  ``q_res = log_softmax(q without j)`` (no gradient);
* ``L_nt = mean KL(q_res || p_res)`` pulls the model's non-target distribution to its head
  predicates' rows; ``L_cm = mean KL(p_res (no gradient) || log_softmax(C[j] without j))`` teaches
  ``C[j]`` the model's non-target distribution. Each KL term is averaged over all ``N·(P-1)``
  entries (N positives), the reduction of PyTorch's ``KLDivLoss()`` as the code builds it for KDL
  (only PDL's is ``batchmean``); it keeps KDL on the scale of the target loss, a per-element mean.

Schedules (counted in training steps of this module, as the code counts iterations): ``α`` starts
at ``alpha`` and after ``alpha_after`` steps grows by ``alpha_growth`` per step, capped at 1;
``γ = gamma ** epoch`` with ``epoch = step // epoch_steps``. Returned: ``γ·L_cm`` and ``γ·α·L_nt``
(the target loss ``L_t`` is the base model's predicate loss). A batch without positives gives
zero losses (the code divides by the number of positives there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.models.dll.patterns import PatternTable

__all__ = ["KnowledgeDecoupling", "head_predicates"]


def head_predicates(table: PatternTable, frequencies: Sequence[float]) -> tuple[list[list[int]], list[list[int]]]:
    """Per predicate j, the predicates sharing its spatial (first list) / actional (second) pattern
    that are more frequent than j, ``[j]`` when none is, ``[]`` when j has no such pattern."""
    if len(frequencies) != len(table.predicates):
        raise ValueError(f"frequencies: expected {len(table.predicates)} values (one per predicate), "
                         f"got {len(frequencies)}")
    out: tuple[list[list[int]], list[list[int]]] = ([], [])
    for j in range(len(table.predicates)):
        for lists, of in zip(out, (table.spatial_of, table.action_of)):
            if of[j] < 0:
                lists.append([])
                continue
            heads = [k for k in range(len(of)) if of[k] == of[j] and frequencies[k] > frequencies[j]]
            lists.append(heads or [j])
    return out


def _padded(lists: list[list[int]]) -> tuple[Tensor, Tensor]:
    width = max(1, max(map(len, lists)))
    return (torch.tensor([lst + [0] * (width - len(lst)) for lst in lists], dtype=torch.long),
            torch.tensor([len(lst) for lst in lists], dtype=torch.long))


def _drop(x: Tensor, j: Tensor) -> Tensor:
    """Rows of ``x (N, P)`` without column ``j[n]`` each: ``(N, P - 1)``."""
    keep = torch.ones_like(x, dtype=torch.bool)
    keep[torch.arange(len(j), device=x.device), j] = False
    return x[keep].view(len(j), x.shape[1] - 1)


def _kl_rows(target: Tensor, input: Tensor) -> Tensor:
    """``KL(exp target[n] || exp input[n])`` of two ``(N, K)`` log-distributions, averaged over
    the ``N·K`` entries (``KLDivLoss(reduction="mean", log_target=True)``)."""
    return (target.exp() * (target - input)).mean()


class KnowledgeDecoupling(nn.Module):
    """KDL (module docstring): ``forward(logits (B, P), targets (B, P) multi-hot) -> {"kdl_cm", "kdl_nt"}``."""

    def __init__(self, table: PatternTable, frequencies: Sequence[float], alpha: float = 0.1,
                 alpha_growth: float = 1e-4, alpha_after: int = 0, gamma: float = 0.99, epoch_steps: int = 1) -> None:
        super().__init__()
        if epoch_steps < 1:
            raise ValueError(f"epoch_steps: expected >= 1, got {epoch_steps}")
        self.alpha0, self.alpha_growth, self.alpha_after = alpha, alpha_growth, alpha_after
        self.gamma0, self.epoch_steps = gamma, epoch_steps
        P = len(table.predicates)
        self.correlation = nn.Parameter(torch.eye(P))
        sp, act = head_predicates(table, frequencies)
        (hs, ns), (ha, na) = _padded(sp), _padded(act)
        self.register_buffer("head_sp", hs)
        self.register_buffer("head_sp_count", ns)
        self.register_buffer("head_act", ha)
        self.register_buffer("head_act_count", na)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def alpha(self) -> float:
        """The current weight α of ``L_nt``."""
        return min(1.0, self.alpha0 + self.alpha_growth * max(0, int(self.step) - self.alpha_after))

    def gamma(self) -> float:
        """The current weight γ of the KDL terms."""
        return self.gamma0 ** (int(self.step) // self.epoch_steps)

    def _pick(self, heads: Tensor, count: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        n = count[j]
        r = (torch.rand(len(j), device=j.device) * n.clamp(min=1)).long().clamp(max=heads.shape[1] - 1)
        return heads[j, r], n > 0

    def forward(self, logits: Tensor, targets: Tensor) -> dict[str, Tensor]:
        if logits.shape != targets.shape:
            raise ValueError(f"targets: expected the logits' shape {tuple(logits.shape)}, got {tuple(targets.shape)}")
        gamma, alpha = self.gamma(), self.alpha()
        if self.training:
            self.step += 1
        i, j = (targets > 0).nonzero(as_tuple=True)
        if len(i) == 0:  # no positive in the batch: nothing to transfer (the code divided by zero)
            zero = logits.sum() * 0 + self.correlation.sum() * 0
            return {"kdl_cm": zero, "kdl_nt": zero}
        C = self.correlation.to(logits.dtype)
        p_res = F.log_softmax(_drop(logits[i], j), 1)
        h_sp, has_sp = self._pick(self.head_sp, self.head_sp_count, j)
        h_act, has_act = self._pick(self.head_act, self.head_act_count, j)
        ws, wa = has_sp.to(C.dtype)[:, None], has_act.to(C.dtype)[:, None]
        q = (C[h_sp] * ws + C[h_act] * wa) / (ws + wa)
        q_res = F.log_softmax(_drop(q, j), 1).detach()
        q_tail = F.log_softmax(_drop(C[j], j), 1)
        return {"kdl_cm": gamma * _kl_rows(p_res.detach(), q_tail), "kdl_nt": gamma * alpha * _kl_rows(q_res, p_res)}
