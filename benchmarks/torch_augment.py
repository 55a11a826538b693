"""PyTorch peer for benchmarks/augment: per-image random rotations of a batch (N, 1, H, W) with
affine_grid + grid_sample (bilinear, zero padding), forward only, as our Rotate op does.
Usage: /usr/bin/python3 torch_augment.py THREADS N H W   -> prints rotate_us=..."""
import math, sys, time, torch, torch.nn.functional as F

def main():
    threads, n, h, w = (int(v) for v in sys.argv[1:5])
    torch.set_num_threads(threads); torch.manual_seed(0)
    x = torch.rand(n, 1, h, w)
    theta_deg = (torch.rand(n) * 2 - 1) * 30 * 0.5
    t = theta_deg * math.pi / 180
    A = torch.zeros(n, 2, 3); A[:, 0, 0] = torch.cos(t); A[:, 0, 1] = -torch.sin(t); A[:, 1, 0] = torch.sin(t); A[:, 1, 1] = torch.cos(t)
    def run():
        with torch.no_grad():
            g = F.affine_grid(A, x.shape, align_corners=False)
            return F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    for _ in range(5): run()
    best = float("inf")
    for _ in range(30):
        s = time.perf_counter(); run(); best = min(best, time.perf_counter() - s)
    print(f"rotate_us={best * 1e6:.1f}")

if __name__ == "__main__":
    main()
