"""PyTorch's side of bench/lua_cell.lua: the same LSTM cell written in Python (z = x W_x + h W_h
+ b, four gate blocks sliced out of z) stepped over a window, and nn.LSTM, forward + backward;
prints the median over ROUNDS of the best of 3 windows of each.
usage: python3 bench/lua_cell_torch.py [ROUNDS] [T] [B] [H] [THREADS]"""
import sys
import time

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)
import torch

args = [int(a) for a in sys.argv[1:]] + [None] * 5
rounds, T, B, H, threads = (a or d for a, d in zip(args[:5], (5, 50, 32, 100, 1)))
torch.set_num_threads(threads)
torch.manual_seed(1)
lstm = torch.nn.LSTM(H, H)
# nn.LSTM's weights as the Python cell's W_x [H, 4H], W_h [H, 4H], b [4H] (the same gates)
W_x = lstm.weight_ih_l0.detach().t().contiguous().requires_grad_()
W_h = lstm.weight_hh_l0.detach().t().contiguous().requires_grad_()
b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().requires_grad_()
x = torch.randn(T, B, H)


def python_cell():
    h = torch.zeros(B, H)
    c = torch.zeros(B, H)
    ys = []
    for t in range(T):
        z = x[t] @ W_x + h @ W_h + b
        i, f = z[:, :H].sigmoid(), z[:, H:2 * H].sigmoid()
        g, o = z[:, 2 * H:3 * H].tanh(), z[:, 3 * H:].sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        ys.append(h)
    torch.stack(ys).sum().backward()


def fused():
    lstm(x)[0].sum().backward()


def best(f):
    bt = float("inf")
    for _ in range(3):
        for p in (W_x, W_h, b):
            p.grad = None
        lstm.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        f()
        bt = min(bt, time.perf_counter() - t0)
    return bt


for _ in range(2):
    best(python_cell)
    best(fused)
tp, tf = [], []
for k in range(rounds):
    tp.append(best(python_cell))
    tf.append(best(fused))
tp.sort()
tf.sort()
print("pytorch python cell %.3f ms, nn.LSTM %.3f ms" %
      (tp[(rounds - 1) // 2] * 1e3, tf[(rounds - 1) // 2] * 1e3))
