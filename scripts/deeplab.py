"""The two DeepLab-family networks edgeseg trains, built without pretrained weights.

- LR-ASPP, MobileNetV3-Large backbone (torchvision `lraspp_mobilenet_v3_large`,
  `weights=None, weights_backbone=None`): the "Searching for MobileNetV3" head, a
  low-cost ASPP with a 1/8 skip; made for phones, so a natural edge candidate.
- DeepLabV3+, MobileNetV3-Large encoder (segmentation-models-pytorch `DeepLabV3Plus`
  with timm's `mobilenetv3_large_100`, `encoder_weights=None`): ASPP at output
  stride 16 plus a 1/4-resolution decoder, which keeps thin scratches.

Both take a 3-channel NCHW image and return one logit map per class at the input
resolution, so the runtime decodes them like the U-Net.

`internal_scale` > 1 upsamples the image inside the graph before the network and
average-pools the logits back: DeepLab's decoder works at 1/4 of its input, which on a
256x256 frame is too coarse for scratches one or two pixels wide. The exported model
still takes and returns the frame size, so nothing changes for the runtime.
"""

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = {
    "lraspp": "LR-ASPP, MobileNetV3-Large backbone (torchvision, weights=None), output stride 8/16",
    "deeplabv3plus": "DeepLabV3+, MobileNetV3-Large encoder (segmentation-models-pytorch + timm, "
                     "encoder_weights=None), ASPP at output stride 16, decoder at 1/4",
}


class LogitsOnly(nn.Module):
    """torchvision's segmentation models return a dict; ONNX export wants the tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


class InternalScale(nn.Module):
    """Run `model` on the image upsampled by `scale` (bilinear); pool the logits back."""

    def __init__(self, model: nn.Module, scale: int):
        super().__init__()
        self.model = model
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=float(self.scale), mode="bilinear", align_corners=False)
        return F.avg_pool2d(self.model(x), self.scale)


def build(arch: str, num_classes: int, internal_scale: int = 1) -> nn.Module:
    net = _network(arch, num_classes)
    return InternalScale(net, internal_scale) if internal_scale > 1 else net


def _network(arch: str, num_classes: int) -> nn.Module:
    if arch == "lraspp":
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large
        return LogitsOnly(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes))
    if arch == "deeplabv3plus":
        import segmentation_models_pytorch as smp
        return smp.DeepLabV3Plus("tu-mobilenetv3_large_100", encoder_weights=None, in_channels=3, classes=num_classes)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
