"""The PyTorch side of train_step_cuda: the reference networks of nn/reference_nets.hpp (`small`:
a 32-64-128 residual network; `mbv2`: one k3/e3 path of a MobileNetV2-style supernet) trained on
the GPU with SGD (Nesterov momentum 0.9, weight decay 5e-4) on random 1x28x28 batches. Prints
train_img_per_s, timed like the library: 10 warm-up steps, then --steps steps between two
synchronisations. float32 without TF32, as the library runs."""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin, cout, 3, stride),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, k=3, e=3):
        super().__init__()
        h = cin * e
        self.body = nn.Sequential(conv_bn_relu(cin, h, 1), conv_bn_relu(h, h, k, stride, h),
                                  nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = cin == cout and stride == 1

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def build(name):
    if name == "small":
        return nn.Sequential(conv_bn_relu(1, 32), BasicBlock(32, 32, 1), BasicBlock(32, 64, 2), BasicBlock(64, 128, 2),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    layers = [conv_bn_relu(1, 16)]
    for cin, cout, stride in [(16, 24, 1), (24, 24, 1), (24, 40, 2), (40, 40, 1), (40, 80, 2), (80, 80, 1)]:
        layers.append(InvertedResidual(cin, cout, stride))
    return nn.Sequential(*layers, conv_bn_relu(80, 256, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="small", choices=["small", "mbv2"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # the library also times cuDNN's algorithms once per shape
    dev = torch.device("cuda")
    torch.manual_seed(0)
    net = build(a.net).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(a.batch, 1, 28, 28, device=dev)
    y = (torch.arange(a.batch, device=dev) % 10).long()

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"net={a.net} device={torch.cuda.get_device_name(0)} batch={a.batch} train_img_per_s={a.steps * a.batch / dt:.1f}")


if __name__ == "__main__":
    main()
