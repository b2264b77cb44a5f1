"""Models: backbone registry, Caffe-style ResNet-50, torchvision/timm trunks, the EAC head."""

from eacfer.models.eac import EACNet
from eacfer.models.factory import create_model
from eacfer.models.registry import BackboneSpec, UnknownBackboneError, get_backbone_spec, list_backbones

__all__ = ["EACNet", "create_model", "BackboneSpec", "UnknownBackboneError", "get_backbone_spec", "list_backbones"]
