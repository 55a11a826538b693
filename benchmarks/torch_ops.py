"""PyTorch peer for benchmarks/conv_matmul and benchmarks/augment, as a server: the C++ benchmark sends one request per
timed call and interleaves them with its own, so both sides see the same machine state.

Usage: /usr/bin/python3 torch_ops.py --serve THREADS
First output line: `peer torch=... blas=... onednn_isa=...` (which BLAS library the process loaded
and which instruction set oneDNN dispatches to). Then, for each request line on stdin
    OP ARGS... KIND
it runs the op once (after any untimed cache eviction) and answers `seconds=T`. The kernels are
called directly, as ours are: no autograd graph, the backward timed on its own.
  conv N C H W K k stride pad groups  fwd|bwd             (bwd: data and weight gradients)
  matmul M K N  fwd|bwd                                    (into preallocated outputs)
  bn N C H W relu  fwd|bwd|fwd_cold|bwd_cold               (training mode, then ReLU when relu is 1;
                                                            _cold writes 256 MiB before the call)
  rotate N H W fwd                                         (benchmarks/augment: per-image rotations)
"""
import math, os, re, sys, tempfile, time
import torch
import torch.nn.functional as F

aten = torch.ops.aten


def loaded_blas():
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if re.search(r"lib(open)?blas[^/]*\.so", line)}
    return ",".join(sorted(libs)) or "none"


def onednn_isa():
    """Runs one convolution with oneDNN's verbose mode on and reads the ISA it reports."""
    fd, path = tempfile.mkstemp()
    saved = os.dup(1)
    try:
        sys.stdout.flush()
        os.dup2(fd, 1)
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            F.conv2d(torch.randn(2, 8, 8, 8), torch.randn(8, 8, 3, 3))
        os.dup2(saved, 1)
        text = open(path).read()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)
        os.unlink(path)
    m = re.search(r"isa:([^,\n]+)", text)
    return m.group(1).strip().replace(" ", "_") if m else "unknown"


def prepare(words):
    """Returns (before, fn) for one request: fn is the timed call, before the untimed setup."""
    op, kind, a = words[0], words[-1], [int(v) for v in words[1:-1]]
    torch.manual_seed(0)
    nothing = lambda: None
    if op == "conv":
        N, C, H, W, K, k, s, p, g = a
        x = torch.randn(N, C, H, W)
        w = torch.randn(K, C // g, k, k)
        y = F.conv2d(x, w, stride=s, padding=p, groups=g)
        if kind == "fwd":
            return nothing, lambda: F.conv2d(x, w, stride=s, padding=p, groups=g)
        gy = torch.randn_like(y)
        return nothing, lambda: aten.convolution_backward(gy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], g,
                                                          [True, True, False])
    if op == "rotate":
        # per-image rotations by up to +-15 degrees (magnitude 0.5 of 30), bilinear, zero padding:
        # affine_grid + grid_sample, the way PyTorch code rotates a batch; forward only, as our op
        N, H, W = a
        x = torch.rand(N, 1, H, W)
        t = (torch.rand(N) * 2 - 1) * 15 * math.pi / 180
        A = torch.zeros(N, 2, 3)
        A[:, 0, 0], A[:, 0, 1], A[:, 1, 0], A[:, 1, 1] = torch.cos(t), -torch.sin(t), torch.sin(t), torch.cos(t)

        def rotate():
            with torch.no_grad():
                g = F.affine_grid(A, x.shape, align_corners=False)
                return F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)

        return nothing, rotate
    if op == "matmul":
        M, K, N = a
        x, w, c = torch.randn(M, K), torch.randn(K, N), torch.empty(M, N)
        if kind == "fwd":
            return nothing, lambda: torch.mm(x, w, out=c)
        gy, dx, dw = torch.randn(M, N), torch.empty(M, K), torch.empty(K, N)
        return nothing, lambda: (torch.mm(gy, w.t(), out=dx), torch.mm(x.t(), gy, out=dw))
    if op == "bn":
        N, C, H, W, relu = a
        x = torch.randn(N, C, H, W) * 2 + 0.5
        g, b = torch.full((C,), 1.5), torch.full((C,), 0.1)
        rm, rv = torch.zeros(C), torch.ones(C)
        flush = torch.zeros(64 << 20)
        before = (lambda: flush.add_(1.0)) if kind.endswith("_cold") else nothing

        def fwd():
            y, mean, invstd = aten.native_batch_norm(x, g, b, rm, rv, True, 0.1, 1e-5)
            return (y.relu_() if relu else y), mean, invstd

        if kind.startswith("fwd"):
            return before, fwd
        y, mean, invstd = fwd()
        gy = torch.randn(N, C, H, W)

        def bwd():
            d = aten.threshold_backward(gy, y, 0) if relu else gy
            return aten.native_batch_norm_backward(d, x, g, rm, rv, mean, invstd, True, 1e-5, [True, True, True])

        return before, bwd
    raise SystemExit(f"torch_ops.py: unknown op '{op}'")


def serve(threads):
    torch.set_num_threads(threads)
    print(f"peer torch={torch.__version__} threads={threads} blas={loaded_blas()} onednn_isa={onednn_isa()}", flush=True)
    cache = {}
    for line in sys.stdin:
        key = line.strip()
        if not key:
            continue
        if key not in cache:
            before, fn = prepare(key.split())
            for _ in range(3):
                before()
                fn()
            cache = {key: (before, fn)}  # one case at a time keeps the memory of a single case
        before, fn = cache[key]
        before()
        t = time.perf_counter()
        fn()
        print(f"seconds={time.perf_counter() - t:.9f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--serve":
        raise SystemExit(__doc__)
    serve(int(sys.argv[2]))
