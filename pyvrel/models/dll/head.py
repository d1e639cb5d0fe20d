"""DLL's predicate head for VidVRD-II (:class:`DLLHead`) and its settings (:class:`DLLConfig`).

The head follows the predicate-head interface of :mod:`pyvrel.models.vidvrd2.model`:
``forward(pair_features (B, H), subject_logits, object_logits, predicate_bias (B, P),
predicate_targets (B, P) | None) -> (predicate_logits (B, P), extra_losses)``. Its own logits come
from PDL (:class:`~pyvrel.models.dll.pdl.PatternDecoupling`) or, without PDL, from VidVRD-II's
``Linear(H -> P, no bias)``; ``predicate_bias`` (the preference term) is added; with KDL the
correlation losses of the biased logits (the code's ``p'``) join the extra losses in training.

Deviations from the DLL code (``shared/specs/models.md`` §4.2), each a fix:

* **optimizer groups**: the code's ``if/if-else`` put most parameters in two optimizers, stepping
  them twice per iteration, and never stepped its object optimizer. Here every parameter is in
  exactly one group of one AdamW (:func:`pyvrel.engine.param_groups`; the preference tables keep
  their own weight decay; the correlation matrix has none, so no decay pulls it to uniform rows);
* **inference**: the code's ``inference()`` still called the removed ``predicate_predictor``. Here
  inference runs the same head without the adversarial branch and without KDL (the correlation
  matrix only shapes training), calibration included, so train and test score predicates alike;
* **batches without positives**: KDL returns zero losses instead of dividing by zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from pyvrel.engine.config import ConfigError
from pyvrel.models.dll.kdl import KnowledgeDecoupling
from pyvrel.models.dll.patterns import PatternTable
from pyvrel.models.dll.pdl import PatternDecoupling

__all__ = ["VARIANTS", "DLLConfig", "DLLHead"]

#: variant name -> (PDL on, KDL on): the paper's four rows.
VARIANTS = {"base": (False, False), "pdl": (True, False), "kdl": (False, True), "dll": (True, True)}


@dataclass
class DLLConfig:
    """DLL's settings (VidVRD-II values of the code and the paper).

    ``variant``: ``base`` (VidVRD-II's linear head), ``pdl``, ``kdl`` or ``dll`` (both).
    PDL: ``pattern_dim`` (384), ``adversarial`` (λ, 0.13), ``grl`` (reversal coefficient 1.0),
    ``ratio`` (r, share of the actional logit, 0.5), ``calibration`` (θ, 1e-3) and
    ``calibration_steps`` (1). KDL: ``kdl_alpha`` (α at the start, 0.1), ``kdl_alpha_growth`` (β per
    step, 1e-4), ``kdl_alpha_after`` (epochs before α grows, 10), ``kdl_gamma`` (γ = kdl_gamma^epoch).
    ``patterns``: a pattern table file (:func:`~pyvrel.models.dll.patterns.read_pattern_table`);
    null: built from the predicate names.
    """

    variant: str = "dll"
    pattern_dim: int = 384
    adversarial: float = 0.13
    grl: float = 1.0
    ratio: float = 0.5
    calibration: float = 1e-3
    calibration_steps: int = 1
    kdl_alpha: float = 0.1
    kdl_alpha_growth: float = 1e-4
    kdl_alpha_after: float = 10.0
    kdl_gamma: float = 0.99
    patterns: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError("variant", f"expected one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if isinstance(self.pattern_dim, bool) or not isinstance(self.pattern_dim, int) or self.pattern_dim < 1:
            raise ConfigError("pattern_dim", f"expected a positive integer, got {self.pattern_dim!r}")
        if isinstance(self.calibration_steps, bool) or not isinstance(self.calibration_steps, int) \
                or self.calibration_steps < 0:
            raise ConfigError("calibration_steps", f"expected an integer >= 0, got {self.calibration_steps!r}")
        for key, low, high in (("adversarial", 0, 1e6), ("grl", 0, 1e6), ("ratio", 0, 1), ("calibration", 0, 1),
                               ("kdl_alpha", 0, 1), ("kdl_alpha_growth", 0, 1), ("kdl_alpha_after", 0, 1e9),
                               ("kdl_gamma", 0, 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(key, f"expected a number in [{low}, {high:g}], got {value!r}")

    @property
    def pdl(self) -> bool:
        return VARIANTS[self.variant][0]

    @property
    def kdl(self) -> bool:
        return VARIANTS[self.variant][1]


class DLLHead(nn.Module):
    """A predicate head with PDL and/or KDL (module docstring).

    Args:
        hidden: width H of the pair features. table: the pattern table of the P predicates.
        frequencies: training frequency of each predicate (KDL's head/tail order).
        cfg: the settings. epoch_steps: training steps per epoch (KDL's α and γ schedules).
    """

    def __init__(self, hidden: int, table: PatternTable, frequencies: Sequence[float], cfg: DLLConfig,
                 epoch_steps: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.pdl:
            self.pdl = PatternDecoupling(hidden, table, cfg.pattern_dim, cfg.adversarial, cfg.grl, cfg.ratio,
                                         cfg.calibration, cfg.calibration_steps)
            for m in self.pdl.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        else:
            self.predictor = nn.Linear(hidden, len(table.predicates), bias=False)
            nn.init.xavier_uniform_(self.predictor.weight)
        if cfg.kdl:
            self.kdl = KnowledgeDecoupling(table, frequencies, cfg.kdl_alpha, cfg.kdl_alpha_growth,
                                           round(cfg.kdl_alpha_after * epoch_steps), cfg.kdl_gamma, epoch_steps)

    def own_weight_decay(self) -> dict[str, float]:
        """The correlation matrix trains without weight decay (its rows are logits)."""
        return {"kdl.correlation": 0.0} if self.cfg.kdl else {}

    def forward(self, pair_features: Tensor, subject_logits: Tensor, object_logits: Tensor, predicate_bias: Tensor,
                predicate_targets: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        if self.cfg.pdl:
            own, extra = self.pdl(pair_features)
        else:
            own, extra = self.predictor(pair_features), {}
        logits = own + predicate_bias
        if self.cfg.kdl and self.training and predicate_targets is not None:
            extra.update(self.kdl(logits, predicate_targets))
        return logits, extra

