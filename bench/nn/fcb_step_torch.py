"""usage: /usr/bin/python3 bench/nn/fcb_step_torch.py [steps]   (default 2000; run by bench/nn.sh)
PyTorch's side of bench/nn/fcb_step.lua: the same step, the same way of timing.
Threads: torch.set_num_threads(1) always (intra-op threads only slow these small ops down);
OPENBLAS_NUM_THREADS in the environment sets the BLAS threads (bench/nn.sh: 1 or 2)."""
import sys
import time

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0)

import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
torch.set_num_threads(1)
torch.manual_seed(1)
m = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.Tanh(), torch.nn.Linear(100, 100),
                        torch.nn.Tanh(), torch.nn.Linear(100, 100), torch.nn.Tanh(),
                        torch.nn.Linear(100, 10))
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x = torch.rand(50, 784)
y = torch.randint(0, 10, (50,))


def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(m(x), y, reduction="sum").backward()
    opt.step()


W1, W2, W4 = torch.randn(100, 784), torch.randn(100, 100), torch.randn(10, 100)
h, g, g4 = torch.randn(50, 100), torch.randn(50, 100), torch.randn(50, 10)
mm = torch.mm


def gemms():
    # the step's eleven products alone (bench/nn/fcb_step.lua replays the same)
    with torch.no_grad():
        mm(x, W1.t()); mm(h, W2.t()); mm(h, W2.t()); mm(h, W4.t())
        mm(g4.t(), h); mm(g4, W4)
        mm(g.t(), h); mm(g, W2); mm(g.t(), h); mm(g, W2)
        mm(g.t(), x)


def best_of(f):
    for _ in range(300):
        f()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t) / n)
    return best


best = best_of(step)
fbest = best_of(gemms)
print("pytorch %s fcb step: %.4f ms" % (torch.__version__, best * 1e3))
print("pytorch fcb GEMM floor: %.4f ms (the step's 11 products alone; step / floor %.2f)"
      % (fbest * 1e3, best / fbest))
