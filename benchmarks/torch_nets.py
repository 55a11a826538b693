"""PyTorch peer for `train_throughput --net shuffle`: the training-step throughput of a derived
network of the ShuffleNetV2 space (include/diffautoml/nas/spaces.hpp, ShuffleSpace), built layer
for layer as the library builds it, on random batches of Fashion-MNIST.

Usage: /usr/bin/python3 torch_nets.py [--threads N] [--steps S] [--batch B] [--arch 3,0,0,2,2,0,2,2] [--params-only]
Prints `net=shuffle ... train_img_per_s=X` (the line train_throughput reads); with --params-only
only `params=N` (tests/test_nn_optim.cpp checks it against the library's network).

The space: stem 3x3/16 conv-BN-ReLU (stride 1), stages 48x2 (stride 2), 96x4 (stride 2), 192x2
(stride 1), 1x1/256 conv-BN-ReLU, global average pool, linear. Choice 0/1/2 is the ShuffleNetV2
unit with a k = 3/5/7 depthwise conv, choice 3 the Xception variant (three depthwise 3x3 -> 1x1
pairs). A unit that keeps its shape splits the channels in halves; the first unit of a stage runs a
projection branch (depthwise k x k + BN, 1x1 conv-BN-ReLU) beside the main branch; the two halves
are concatenated and channel-shuffled with 2 groups."""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_train():
    d = "/usr/share/datasets/fashion-mnist/"
    with gzip.open(d + "train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16)
    with gzip.open(d + "train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    x = torch.tensor(x.reshape(-1, 1, 28, 28), dtype=torch.float32) / 255.0
    return (x - 0.2860) / 0.3530, torch.tensor(y, dtype=torch.long)


def cbr(i, o, k=3, s=1, g=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


def depthwise(c, k, s):  # depthwise k x k + BN, no ReLU (ShuffleNetV2)
    return nn.Sequential(nn.Conv2d(c, c, k, s, k // 2, groups=c, bias=False), nn.BatchNorm2d(c))


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride, k, xception):
        super().__init__()
        self.split = stride == 1 and cin == cout
        bin_, bout = (cin // 2, cout // 2) if self.split else (cin, cout - cin)
        mid = cout // 2
        if xception:
            layers, c = [], bin_
            for i in range(3):
                nxt = bout if i == 2 else mid
                layers += [depthwise(c, 3, stride if i == 0 else 1), cbr(c, nxt, 1)]
                c = nxt
            self.main = nn.Sequential(*layers)
        else:
            self.main = nn.Sequential(cbr(bin_, mid, 1), depthwise(mid, k, stride), cbr(mid, bout, 1))
        self.proj = None if self.split else nn.Sequential(depthwise(cin, k, stride), cbr(cin, cin, 1))

    def forward(self, x):
        if self.split:
            a, b = x.chunk(2, dim=1)
            y = torch.cat([a, self.main(b)], 1)
        else:
            y = torch.cat([self.proj(x), self.main(x)], 1)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def shuffle_net(arch, classes=10):
    stages = [(48, 2, 2), (96, 4, 2), (192, 2, 1)]
    layers, c, d = [cbr(1, 16)], 16, 0
    for width, count, stride in stages:
        for i in range(count):
            choice = arch[d]
            layers.append(ShuffleUnit(c, width, stride if i == 0 else 1, [3, 5, 7, 3][choice], choice == 3))
            c, d = width, d + 1
    return nn.Sequential(*layers, cbr(c, 256, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, classes))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--arch", default="3,0,0,2,2,0,2,2")
    ap.add_argument("--params-only", action="store_true", help="print params=N for --arch and exit (no data, no timing)")
    a = ap.parse_args()
    arch = [int(v) for v in a.arch.split(",")]
    if len(arch) != 8 or any(v < 0 or v > 3 for v in arch):
        raise SystemExit(f"torch_nets.py: --arch needs 8 choices in 0..3, got {a.arch}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.params_only:
        print(f"net=shuffle arch={a.arch} params={sum(p.numel() for p in shuffle_net(arch).parameters())}")
        raise SystemExit(0)
    x, y = load_train()
    m = shuffle_net(arch)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    nparam = sum(p.numel() for p in m.parameters())

    def step():
        idx = torch.randint(0, x.shape[0], (a.batch,))
        opt.zero_grad()
        loss = F.cross_entropy(m(x[idx]), y[idx])
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t
    print(f"net=shuffle arch={a.arch} params={nparam} threads={a.threads} batch={a.batch} "
          f"train_img_per_s={a.steps * a.batch / dt:.1f}")
