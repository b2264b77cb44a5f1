"""EACNet (models/eac.py): RAF-DB's 7 classes by default; the attributes model files and exports read."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eacfer.models.eac import EACNet

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)


def test_defaults_are_rafdbs_seven_classes_and_no_name():
    net = EACNet(nn.Conv2d(3, 4, 1), num_features=4)
    assert net.num_classes == 7 and net.fc.out_features == 7 and net.fc.in_features == 4
    assert net.num_features == 4 and net.backbone_name == ""
    logits, cams = net.forward_with_cams(torch.zeros(1, 3, 2, 2))
    assert logits.shape == (1, 7) and cams.shape == (1, 7, 2, 2)


def test_attributes_follow_the_arguments():
    net = EACNet(nn.Conv2d(3, 5, 1), num_features=5, num_classes=3, backbone_name="tiny")
    assert (net.num_classes, net.num_features, net.backbone_name) == (3, 5, "tiny")
    assert net.fc.out_features == 3
