import urllib.error

import numpy as np
import pytest
import torch
from helpers import shared_dataset

from lineguard.backbones import available_backbones, create_backbone, get_backbone_spec
from lineguard.errors import BackboneUnavailable

OFFLINE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenetv2"]


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_backbones_give_stride_8_and_16_features(name):
    spec = get_backbone_spec(name)
    assert spec.offline
    net = create_backbone(name)
    with torch.inference_mode():
        f8, f16 = net(torch.zeros(1, 3, 96, 160))
    assert f8.shape[1:] == (net.channels[0], 12, 20)
    assert f16.shape[1:] == (net.channels[1], 6, 10)
    assert not any(p.requires_grad for p in net.parameters())


def test_pretrained_weights_differ_from_random_init():
    a = create_backbone("efficientnet_lite0", pretrained=True)
    b = create_backbone("efficientnet_lite0", pretrained=False)
    key = "_conv_stem.weight"
    assert not torch.allclose(a.state_dict()[key], b.state_dict()[key])


def test_registry_lists_offline_and_hub_names():
    names = available_backbones()
    assert set(OFFLINE) <= set(names)
    assert "wide_resnet50_2" in names and not names["wide_resnet50_2"].offline


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(BackboneUnavailable, match="efficientnet_lite0"):
        get_backbone_spec("resnet9000")


def test_unreachable_hub_gives_a_clear_error(monkeypatch, tmp_path):
    pytest.importorskip("torchvision")
    import torchvision.models._api as tv_api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # torchvision binds the loader at import time: patch where it is looked up,
    # and use an empty cache so no earlier download can answer instead.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(BackboneUnavailable) as info:
        create_backbone("resnet18", pretrained=True)
    message = str(info.value)
    assert "could not download" in message and "efficientnet_lite0" in message


def test_lite0_recognises_a_real_image_as_imagenet_would():
    """End-to-end check of padding, BN eps and normalisation: a hazelnut looks like an acorn."""
    import cv2

    from lineguard.backbones.efficientnet_lite import build_classifier

    root = shared_dataset("hazelnut-subset")
    path = sorted(root.rglob("*.jpg"))[0]
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    x = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
    x = torch.from_numpy(((x - 127.0) / 128.0).transpose(2, 0, 1))[None]
    with torch.inference_mode():
        top5 = build_classifier("lite0")(x).topk(5).indices[0].tolist()
    acorn, buckeye = 988, 990
    assert acorn in top5 or buckeye in top5
