"""DLL (Wang et al., TMM 2024): decoupled label learning for long-tailed predicates, on VidVRD-II.

=================  =================================================================================
module             what
=================  =================================================================================
:mod:`.patterns`   predicate -> (actional, spatial) pattern tables (any vocabulary, shipped ones,
                   files), checked
:mod:`.pdl`        pattern decoupling: gradient reversal, Bernoulli KL, mapping with ratio r,
                   mutual calibration
:mod:`.kdl`        knowledge decoupling: correlation matrix, head-to-tail transfer, α / γ schedules
:mod:`.head`       :class:`DLLConfig`, :class:`DLLHead` (VidVRD-II's predicate-head interface;
                   variants base / pdl / kdl / dll) and the fixes of the DLL code
:mod:`.task`       ``pyvrel train --model dll`` and the detector loader
:mod:`.study`      the variants side by side on the long-tailed synthetic world, ``pyvrel demo dll``
=================  =================================================================================
"""

from pyvrel.models.dll.head import VARIANTS, DLLConfig, DLLHead
from pyvrel.models.dll.kdl import KnowledgeDecoupling
from pyvrel.models.dll.patterns import PatternTable, PatternTableError, build_pattern_table, pattern_table
from pyvrel.models.dll.pdl import PatternDecoupling, PatternMapping, grad_reverse

__all__ = ["VARIANTS", "DLLConfig", "DLLHead", "KnowledgeDecoupling", "PatternDecoupling", "PatternMapping",
           "PatternTable", "PatternTableError", "build_pattern_table", "grad_reverse", "pattern_table"]
