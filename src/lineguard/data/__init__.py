"""Reading inspection data: images, masks and dataset layouts, as typed samples."""

from lineguard.data.image_io import MAX_IMAGE_PIXELS, read_image, read_mask
from lineguard.data.readers import FORMATS, open_dataset
from lineguard.data.samples import DataSplit, LabeledImage, SampleRef

__all__ = [
    "FORMATS",
    "MAX_IMAGE_PIXELS",
    "DataSplit",
    "LabeledImage",
    "SampleRef",
    "open_dataset",
    "read_image",
    "read_mask",
]
