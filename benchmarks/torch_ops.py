"""PyTorch peer for benchmarks/conv_matmul: times one op forward or backward and prints GFLOP/s.
Usage: /usr/bin/python3 torch_ops.py OP KIND ARGS...  (same shapes as the C++ benchmark)
  conv N C H W K k stride pad groups  fwd|bwd
  matmul M K N  fwd|bwd"""
import sys, time, torch, torch.nn.functional as F

def timeit(fn, reps):
    for _ in range(3): fn()
    best = float("inf")
    for _ in range(reps):
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
