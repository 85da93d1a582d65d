"""Image preprocessing shared by training and the runtime (numpy + OpenCV only).

Both sides call the same function on the same decoded image, which is what makes
exported scores equal the training scores.
"""

from lineguard.preprocess.camera import CameraCalibration, calibrate_camera
from lineguard.preprocess.tiling import Tiling, merge_tiles, part_score
from lineguard.preprocess.transforms import Preprocessing, crop_roi, to_uint8_scale

__all__ = [
    "CameraCalibration",
    "Preprocessing",
    "Tiling",
    "calibrate_camera",
    "crop_roi",
    "merge_tiles",
    "part_score",
    "to_uint8_scale",
]
