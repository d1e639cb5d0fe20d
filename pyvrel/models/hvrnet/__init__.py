"""HVR-Net (Han et al., ECCV 2020): video object detection with intra- and inter-video proposal relations.

:mod:`.model` holds :class:`HVRNetConfig` and the detection head with its relation stages (on
:mod:`pyvrel.nn.relation`), :mod:`.task` training with :mod:`pyvrel.engine` (the video-triplet
sampler), inference over windows of frames, the detections ``pyvrel track`` reads and the frame
mAP / proposal accuracy metrics, :mod:`.demo` ``pyvrel demo hvrnet``.
"""

from pyvrel.models.hvrnet.model import DELTA_STDS, HVRNet, HVRNetConfig, decode_boxes, encode_boxes

__all__ = ["DELTA_STDS", "HVRNet", "HVRNetConfig", "decode_boxes", "encode_boxes"]
