"""Model input preprocessing, equal to torchvision's ``weights.transforms()`` (tested tensor
for tensor).

One small dataclass instead of transform objects: it keys caches (``key``), tells the size a
batch will have (``output_size``), and runs on uint8 CHW tensors on any device.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize`` (bilinear, antialiased), centre-crop ``crop`` if set,
    scale to [0, 1] and normalise with ImageNet mean/std. With ``multiple_of`` > 1 (and no crop)
    both sides are then rounded to a multiple of it (smp encoders need a size divisible by 16)."""

    resize: int
    crop: int | None = None
    multiple_of: int = 1
    square: bool = (
        False  # resize to resize x resize, ignoring the aspect ratio (trained segmenters)
    )

    @property
    def key(self) -> str:
        return f"r{self.resize}-c{self.crop}-m{self.multiple_of}-s{int(self.square)}-imagenet-norm"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if self.square:
            return self.resize, self.resize
        if self.crop:
            return self.crop, self.crop
        short, long_ = (height, width) if height <= width else (width, height)
        new_long = int(self.resize * long_ / short)  # torchvision's rounding (int, not round)
        h, w = (self.resize, new_long) if height <= width else (new_long, self.resize)
        if self.multiple_of > 1:
            m = self.multiple_of
            h, w = max(m, round(h / m) * m), max(m, round(w / m) * m)
        return h, w

    def __call__(self, image):
        """uint8 ``(C, H, W)`` or ``(B, C, H, W)`` tensor -> normalised float tensor."""
        return self.normalise(self.geometry(image))

    def normalise(self, x):
        """The second half of :meth:`__call__`: uint8 pixels -> normalised floats. (Training
        keeps validation inputs as uint8 :meth:`geometry` outputs and scores them through this,
        bit for bit what inference computes.)"""
        import torch
        from torchvision.transforms import functional as F

        x = F.convert_image_dtype(x, torch.float)
        return F.normalize(x, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))

    def geometry(self, image):
        """The first half of :meth:`__call__`: resized (and cropped) uint8 pixels."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        size = [self.resize, self.resize] if self.square else [self.resize]
        x = F.resize(image, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        if self.crop:
            x = F.center_crop(x, [self.crop, self.crop])
        elif self.multiple_of > 1 and not self.square:
            size = list(self.output_size(*image.shape[-2:]))
            if list(x.shape[-2:]) != size:
                x = F.resize(image, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        return x
