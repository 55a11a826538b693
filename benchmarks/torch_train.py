"""PyTorch peer for benchmarks/train_throughput, as a server: the C++ benchmark asks for one timed
chunk of training steps at a time and interleaves them with its own, so both sides see the same
machine state (the networks are torch_ref.py's and torch_nets.py's, the step the same: SGD with
Nesterov momentum 0.9, lr 0.05, weight decay 5e-4, a random batch of Fashion-MNIST each step).

Usage: /usr/bin/python3 torch_train.py --serve THREADS BATCH
First output line: `peer torch=... threads=... blas=... onednn_isa=...`. Then, for each request:
  net small | net mbv2 | net shuffle ARCH   builds the network and its optimizer, runs 5 untimed
                                            steps; answers `params=N`
  time STEPS                                runs STEPS steps; answers `train_img_per_s=X`
"""
import os, sys, time
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_nets  # noqa: E402
import torch_ref  # noqa: E402
from torch_ops import loaded_blas, onednn_isa  # noqa: E402


def serve(threads, batch):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y = torch_ref.load("train")
    print(f"peer torch={torch.__version__} threads={threads} blas={loaded_blas()} onednn_isa={onednn_isa()}", flush=True)
    model = opt = None

    def step():
        idx = torch.randint(0, x.shape[0], (batch,))
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "net":
            if words[1] == "shuffle":
                model = torch_nets.shuffle_net([int(v) for v in words[2].split(",")])
            else:
                model = torch_ref.net(words[1])
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
            for _ in range(5):
                step()
            print(f"params={sum(p.numel() for p in model.parameters())}", flush=True)
        elif words[0] == "time":
            steps = int(words[1])
            t = time.perf_counter()
            for _ in range(steps):
                step()
            print(f"train_img_per_s={steps * batch / (time.perf_counter() - t):.3f}", flush=True)
        else:
            print(f"error=unknown request {line.strip()!r}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--serve":
        raise SystemExit(__doc__)
    serve(int(sys.argv[2]), int(sys.argv[3]))
