"""PyTorch peer for benchmarks/conv_matmul: times one op forward or backward and prints GFLOP/s.
Usage: /usr/bin/python3 torch_ops.py OP KIND ARGS...  (same shapes as the C++ benchmark)
  conv N C H W K k stride pad groups  fwd|bwd
  matmul M K N  fwd|bwd
  bn N C H W relu  fwd|bwd|fwd_cold|bwd_cold   (batch norm in training mode, then relu when relu is 1;
                    prints gbs; _cold writes 256 MiB before each repetition)"""
import sys, time, torch, torch.nn.functional as F

def timeit(fn, reps, before=lambda: None):
    for _ in range(3): fn()
    best = float("inf")
    for _ in range(reps):
        before()
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return best

def main():
    torch.set_num_threads(int(sys.argv[1])); op = sys.argv[2]; a = [int(v) for v in sys.argv[3:-1]]; kind = sys.argv[-1]
    torch.manual_seed(0)
    if op == "conv":
        N, C, H, W, K, k, s, p, g = a
        x = torch.randn(N, C, H, W, requires_grad=True); w = torch.randn(K, C // g, k, k, requires_grad=True)
        y = F.conv2d(x, w, stride=s, padding=p, groups=g); OH, OW = y.shape[2], y.shape[3]
        flops = 2.0 * N * K * OH * OW * (C // g) * k * k
        if kind == "fwd":
            with torch.no_grad(): sec = timeit(lambda: F.conv2d(x, w, stride=s, padding=p, groups=g), 10)
        else:
            gy = torch.randn_like(y); flops *= 2
            def bwd():
                out = F.conv2d(x, w, stride=s, padding=p, groups=g)
                torch.autograd.grad(out, (x, w), gy)
            sec = timeit(bwd, 10) - timeit(lambda: F.conv2d(x, w, stride=s, padding=p, groups=g).detach(), 10)
    elif op == "bn":
        N, C, H, W, relu = a
        x = torch.randn(N, C, H, W) * 2 + 0.5; x.requires_grad_(True)
        g = torch.full((C,), 1.5, requires_grad=True); b = torch.full((C,), 0.1, requires_grad=True)
        rm = torch.zeros(C); rv = torch.ones(C)
        def f():
            y = F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1, eps=1e-5)
            return F.relu(y) if relu else y
        size = 4.0 * N * C * H * W
        flush = torch.zeros(64 << 20)
        before = (lambda: flush.add_(1.0)) if kind.endswith("_cold") else (lambda: None)
        if kind.startswith("fwd"):
            with torch.no_grad(): sec = timeit(f, 10, before)
            print(f"gbs={2 * size / max(sec, 1e-9) / 1e9:.2f}")
        else:
            gy = torch.randn(N, C, H, W)
            sec = timeit(lambda: torch.autograd.grad(f(), (x, g, b), gy), 10, before) - timeit(lambda: f().detach(), 10, before)
            print(f"gbs={(4 if relu else 3) * size / max(sec, 1e-9) / 1e9:.2f}")
        return
    else:
        M, K, N = a
        x = torch.randn(M, K, requires_grad=True); w = torch.randn(K, N, requires_grad=True)
        flops = 2.0 * M * K * N
        if kind == "fwd":
            with torch.no_grad(): sec = timeit(lambda: x @ w, 20)
        else:
            gy = torch.randn(M, N); flops *= 2
            sec = timeit(lambda: torch.autograd.grad(x @ w, (x, w), gy), 20) - timeit(lambda: (x @ w).detach(), 20)
    print(f"gflops={flops / max(sec, 1e-9) / 1e9:.2f}")

main()
