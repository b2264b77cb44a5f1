"""Models: backbone registry, Caffe-style ResNet-50, torchvision/timm trunks, the EAC head."""

from .eac import EACNet
from .factory import create_model
from .registry import BackboneSpec, UnknownBackboneError, get_backbone_spec, list_backbones

__all__ = ["EACNet", "create_model", "BackboneSpec", "UnknownBackboneError", "get_backbone_spec", "list_backbones"]
