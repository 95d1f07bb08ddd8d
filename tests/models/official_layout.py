"""State_dict layouts of the official SiftFunnel models, written by hand from the official code.

Source: GOERAHG214/SiftFunnel @ c487437, `InfoDR_package.py` (pv4_classifier_4, rn18_pv4,
vgg16_bn_pv4) and `target_model_packages.py` (Classifier_4, rn18, vgg16_bn, and the baseline
AE_Classifier_4). Each function below
transcribes one official `__init__` (attribute names, `nn.Sequential` indices, bias flags, widths)
as a function of nc, num_classes and img_size, including the official quirks (ResNet conv1 width =
img_size; ResNet/VGG classifier input 512 * (2 * (img_size // 64))^2). Nothing here looks at the
sift_deploy modules: that is what makes loading these layouts a test of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Layout = dict[str, tuple[int, ...]]


# -- official layer types ------------------------------------------------------------------------

def conv(out: Layout, name: str, cin: int, cout: int, k: int, bias: bool = True) -> None:
    out[f"{name}.weight"] = (cout, cin, k, k)
    if bias:
        out[f"{name}.bias"] = (cout,)


def bn(out: Layout, name: str, c: int) -> None:
    for key in ("weight", "bias", "running_mean", "running_var"):
        out[f"{name}.{key}"] = (c,)
    out[f"{name}.num_batches_tracked"] = ()


def linear(out: Layout, name: str, fin: int, fout: int, bias: bool = True) -> None:
    out[f"{name}.weight"] = (fout, fin)
    if bias:
        out[f"{name}.bias"] = (fout,)


def se_module(out: Layout, name: str, c: int, reduction: int) -> None:
    # SEModule.fc = Sequential(Linear(c, c//r, bias=False), ReLU, Linear(c//r, c, bias=False), Sigmoid)
    linear(out, f"{name}.fc.0", c, c // reduction, bias=False)
    linear(out, f"{name}.fc.2", c // reduction, c, bias=False)


def triplet_attention(out: Layout, name: str) -> None:
    # Three AttentionGates; each holds BasicConv(2, 1, 7, relu=False): conv without bias + BN.
    for gate in ("cw", "hc", "hw"):
        conv(out, f"{name}.{gate}.conv.conv", 2, 1, 7, bias=False)
        bn(out, f"{name}.{gate}.conv.bn", 1)


def cbam(out: Layout, name: str, c: int, ratio: int) -> None:
    conv(out, f"{name}.ca.fc1", c, c // ratio, 1, bias=False)
    conv(out, f"{name}.ca.fc2", c // ratio, c, 1, bias=False)
    conv(out, f"{name}.sa.conv1", 2, 1, 7, bias=False)


def up(out: Layout, name: str, cin: int, cout: int) -> None:
    conv(out, f"{name}.conv.0", cin, cout, 3, bias=False)
    conv(out, f"{name}.conv.1", cout, cout, 3, bias=False)
    bn(out, f"{name}.conv.2", cout)


def residual_block(out: Layout, name: str, cin: int, cout: int, stride: int) -> None:
    # left = Sequential(conv3x3 no bias, BN, ReLU, conv3x3 no bias, BN); 1x1 shortcut if shape changes
    conv(out, f"{name}.left.0", cin, cout, 3, bias=False)
    bn(out, f"{name}.left.1", cout)
    conv(out, f"{name}.left.3", cout, cout, 3, bias=False)
    bn(out, f"{name}.left.4", cout)
    if stride != 1 or cin != cout:
        conv(out, f"{name}.shortcut.0", cin, cout, 1, bias=False)
        bn(out, f"{name}.shortcut.1", cout)


def vgg_make_layers(out: Layout, name: str, cfg: list, cin: int) -> None:
    # make_layers(batch_norm=True): Conv2d(3x3, bias) + BN + ReLU(inplace) per number, MaxPool per 'M'.
    index = 0
    for item in cfg:
        if item == "M":
            index += 1
            continue
        conv(out, f"{name}.{index}", cin, item, 3)
        bn(out, f"{name}.{index + 1}", item)
        index += 3
        cin = item


def vgg_pv4_conv_pair(out: Layout, name: str, cin: int, cout: int) -> None:
    # Sequential(conv3x3 no bias, BN, ReLU, conv3x3 no bias, BN, ReLU, MaxPool)
    conv(out, f"{name}.0", cin, cout, 3, bias=False)
    bn(out, f"{name}.1", cout)
    conv(out, f"{name}.3", cout, cout, 3, bias=False)
    bn(out, f"{name}.4", cout)


def vgg_classifier(out: Layout, fin: int, num_classes: int) -> None:
    # Sequential(Linear, ReLU, Dropout(0.3), Linear, ReLU, Dropout(0.2), Linear)
    linear(out, "classifier.0", fin, 4096)
    linear(out, "classifier.3", 4096, 4096)
    linear(out, "classifier.6", 4096, num_classes)


# -- InfoDR_package.py ----------------------------------------------------------------------------

def pv4_classifier_4(nc: int, num_classes: int, img_size: int, ndf: int = 64) -> Layout:
    out: Layout = {}
    conv(out, "block1.0", nc, ndf, 3)
    bn(out, "block1.1", ndf)
    se_module(out, "se_block1", ndf, 32)
    triplet_attention(out, "triplet")
    # block2_mix: Conv1x1 ndf->ndf/4, BN, ReLU, MaxPool, Conv1x1 ->12, Conv3x3, SiLU, Conv1x1, Conv3x3, Conv5x5, ReLU
    conv(out, "block2_mix.0", ndf, ndf // 4, 1)
    bn(out, "block2_mix.1", ndf // 4)
    conv(out, "block2_mix.4", ndf // 4, 12, 1)
    conv(out, "block2_mix.5", 12, 12, 3)
    conv(out, "block2_mix.7", 12, 12, 1)
    conv(out, "block2_mix.8", 12, 12, 3)
    conv(out, "block2_mix.9", 12, 12, 5)
    se_module(out, "se_block2", 12, 4)
    cbam(out, "cbam", 12, 6)
    up(out, "up", 12, ndf * 2)
    triplet_attention(out, "triplet_cloud")
    conv(out, "block3.0", ndf * 2, ndf * 4, 3)
    bn(out, "block3.1", ndf * 4)
    conv(out, "block4.0", ndf * 4, ndf * 8, 3)
    bn(out, "block4.1", ndf * 8)
    linear(out, "fc.0", ndf * 8 * (img_size // 16) ** 2, num_classes * 5)
    linear(out, "fc.2", num_classes * 5, num_classes)
    return out


def rn18_pv4(nc: int, num_classes: int, img_size: int) -> Layout:
    out: Layout = {}
    inchannel, mid = img_size, img_size // 64
    conv(out, "conv1.0", nc, inchannel, 3, bias=False)
    bn(out, "conv1.1", inchannel)
    # make_layer(64, 2, stride 1); afterwards the official make_layer resets inchannel to 128
    residual_block(out, "layer1.0", inchannel, 64, 1)
    residual_block(out, "layer1.1", 64, 64, 1)
    se_module(out, "se_block1", 64, 16)
    triplet_attention(out, "triplet")
    conv(out, "layer2_mix.0", 64, 128, 3, bias=False)
    bn(out, "layer2_mix.1", 128)
    conv(out, "layer2_mix.3", 128, 128, 3, bias=False)
    bn(out, "layer2_mix.4", 128)
    se_module(out, "se_block2", 128, 32)
    triplet_attention(out, "triplet_2")
    conv(out, "block2_mix.0", 128, 32, 1)
    bn(out, "block2_mix.1", 32)
    conv(out, "block2_mix.3", 32, 6, 1)
    conv(out, "block2_mix.4", 6, 6, 3)
    conv(out, "block2_mix.6", 6, 6, 1)
    conv(out, "block2_mix.7", 6, 6, 3)
    conv(out, "block2_mix.8", 6, 6, 5)
    se_module(out, "se_block3", 6, 3)
    cbam(out, "cbam", 6, 3)
    up(out, "up", 6, 128)
    triplet_attention(out, "triplet_cloud")
    residual_block(out, "layer3.0", 128, 256, 2)
    residual_block(out, "layer3.1", 256, 256, 1)
    residual_block(out, "layer4.0", 256, 512, 2)
    residual_block(out, "layer4.1", 512, 512, 1)
    linear(out, "fc", 512 * (mid * 2) ** 2, num_classes)
    return out


def vgg16_bn_pv4(nc: int, num_classes: int, img_size: int) -> Layout:
    out: Layout = {}
    mid = img_size // 64
    # `features` is assigned first in VGG_pv4.__init__: cfg 'D' (shortened), input_channel 256
    vgg_make_layers(out, "features", [256, "M", 512, 512, 512, "M", 512, 512, 512, "M"], 256)
    vgg_pv4_conv_pair(out, "conv1", nc, 64)
    se_module(out, "se_block1", 64, 16)
    triplet_attention(out, "triplet1")
    vgg_pv4_conv_pair(out, "conv2", 64, 128)
    se_module(out, "se_block2", 128, 32)
    triplet_attention(out, "triplet2")
    conv(out, "layer1.0", 128, 32, 3, bias=False)
    bn(out, "layer1.1", 32)
    conv(out, "layer1.3", 32, 4, 1)
    conv(out, "layer1.4", 4, 4, 3)
    conv(out, "layer1.6", 4, 4, 1)
    conv(out, "layer1.7", 4, 4, 3)
    conv(out, "layer1.8", 4, 4, 5)
    se_module(out, "se_block3", 4, 4)
    cbam(out, "cbam", 4, 4)
    up(out, "up", 4, 256)
    triplet_attention(out, "triplet_cloud")
    conv(out, "block2_mix.0", 256, 256, 3)
    bn(out, "block2_mix.1", 256)
    vgg_classifier(out, 512 * (mid * 2) ** 2, num_classes)
    return out


# -- target_model_packages.py (unprotected) -------------------------------------------------------

def classifier_4(nc: int, num_classes: int, img_size: int, ndf: int = 64) -> Layout:
    out: Layout = {}
    for i, (cin, cout) in enumerate(((nc, ndf), (ndf, ndf * 2), (ndf * 2, ndf * 4), (ndf * 4, ndf * 8)), start=1):
        conv(out, f"block{i}.0", cin, cout, 3)
        bn(out, f"block{i}.1", cout)
    linear(out, "fc.0", ndf * 8 * (img_size // 16) ** 2, num_classes * 5)
    linear(out, "fc.2", num_classes * 5, num_classes)
    return out


def rn18(nc: int, num_classes: int, img_size: int) -> Layout:
    out: Layout = {}
    inchannel, mid = img_size, img_size // 64
    conv(out, "conv1.0", nc, inchannel, 3, bias=False)
    bn(out, "conv1.1", inchannel)
    for layer, channels, stride in (("layer1", 64, 1), ("layer2", 128, 2), ("layer3", 256, 2), ("layer4", 512, 2)):
        residual_block(out, f"{layer}.0", inchannel, channels, stride)
        residual_block(out, f"{layer}.1", channels, channels, 1)
        inchannel = channels
    linear(out, "fc", 512 * (mid * 2) ** 2, num_classes)
    return out


def vgg16_bn(nc: int, num_classes: int, img_size: int) -> Layout:
    out: Layout = {}
    mid = img_size // 64
    cfg_d = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    vgg_make_layers(out, "features", cfg_d, nc)
    vgg_classifier(out, 512 * (mid * 2) ** 2, num_classes)
    return out


# -- target_model_packages.py (baselines) -----------------------------------------------------------

def ae_classifier_4(nc: int, num_classes: int, img_size: int, ndf: int = 64) -> Layout:
    # Classifier_4's blocks and fc, plus EncoderWithResidualEdge(ndf) and DecoderWithResidualEdge(ndf),
    # registered after fc: conv2ed = Conv3x3 (bias), encoder = Sequential(Conv3x3, SiLU, Conv3x3), then
    # res_edge = Sequential(Conv3x3 2ndf->ndf, BN(ndf)) / res_cloud = Sequential(Conv3x3 ndf->2ndf, BN(2ndf)).
    out = classifier_4(nc, num_classes, img_size, ndf)
    for name, cin, cout, projection in (("encoder", ndf * 2, ndf, "res_edge"), ("decoder", ndf, ndf * 2, "res_cloud")):
        conv(out, f"{name}.conv2ed", cin, cin, 3)
        conv(out, f"{name}.encoder.0", cin, cin, 3)
        conv(out, f"{name}.encoder.2", cin, cin, 3)
        conv(out, f"{name}.{projection}.0", cin, cout, 3)
        bn(out, f"{name}.{projection}.1", cout)
    return out


# -- which of our architectures each official model corresponds to --------------------------------

@dataclass(frozen=True)
class Official:
    name: str
    arch: str
    layout: Callable[[int, int, int], Layout]
    # Input sizes the official class runs at. The ResNet and VGG heads are 512*(2*(s//64))^2 wide,
    # i.e. 0 at 32 (and the SiftFunnel ResNet's conv1 is `img_size` wide), so only 64 works there.
    sizes: tuple[int, ...]


OFFICIAL = {
    o.name: o
    for o in (
        Official("pv4_classifier_4", "siftfunnel-cnn", pv4_classifier_4, (32, 64)),
        Official("rn18_pv4", "siftfunnel-resnet18", rn18_pv4, (64,)),
        Official("vgg16_bn_pv4", "siftfunnel-vgg16bn", vgg16_bn_pv4, (64,)),
        Official("Classifier_4", "plain-cnn", classifier_4, (32, 64)),
        Official("rn18", "plain-resnet18", rn18, (64,)),
        Official("vgg16_bn", "plain-vgg16bn", vgg16_bn, (64,)),
        Official("AE_Classifier_4", "ae-cnn", ae_classifier_4, (32, 64)),
    )
}
