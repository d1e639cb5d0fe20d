"""VidVRD-II (Shang et al., MM'21), the segment-based relation detector DLL builds on.

Videos are cut into 30-frame segments with stride 15 (:mod:`pyvrel.data.segments`); each
segment's tracklets are paired (no self-pairs), each pair gets the mean features of its two
tracklets and a 12-d relative position; :class:`IterativeClassifier` classifies subject, object
and predicates, with three preference tables linking them; segment predictions are joined into
video relations by the greedy association (:func:`pyvrel.eval.associate`, ``"vidvrd2"``).

Predicate head interface (for DLL and other heads): ``IterativeClassifier(cfg, predicate_head=head)``
calls ``head(pair_features, subject_logits, object_logits, predicate_bias, predicate_targets=None)``
and expects ``(predicate_logits, extra_losses)``; see :mod:`pyvrel.models.vidvrd2.model` for the
shapes, and :class:`LinearPredicateHead` for the default (§4.1's ``predicate_predictor``).
"""

from pyvrel.models.vidvrd2.config import VidVRD2Config
from pyvrel.models.vidvrd2.model import (IterativeClassifier, LinearPredicateHead, PairBatch, PreferenceTables,
                                         binary_focal_loss, softmax_focal_loss)

__all__ = ["IterativeClassifier", "LinearPredicateHead", "PairBatch", "PreferenceTables", "VidVRD2Config",
           "binary_focal_loss", "softmax_focal_loss"]
