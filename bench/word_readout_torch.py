"""PyTorch's readout loss for bench/word_readout.lua: F.cross_entropy(F.linear(h, W, b), y),
forward + backward, [640 x 100] -> 10,000 classes; prints the median of best-of-3 rounds.
usage: python3 bench/word_readout_torch.py [ROUNDS] [THREADS]"""
import sys
import time

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)
import torch
import torch.nn.functional as F

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
R, D, V = 640, 100, 10000
torch.manual_seed(1)
h = torch.randn(R, D, requires_grad=True)
lin = torch.nn.Linear(D, V)
y = torch.randint(0, V, (R,))


def best():
    b = float("inf")
    for _ in range(3):
        h.grad = None
        lin.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        F.cross_entropy(lin(h), y).backward()
        b = min(b, time.perf_counter() - t0)
    return b


best()
ts = sorted(best() for _ in range(rounds))
print("pytorch word readout: %.3f ms" % (ts[(len(ts) - 1) // 2] * 1e3))
