"""usage: /usr/bin/python3 bench/nn/mnist_epoch_torch.py [data dir]   (default data/mnist; run by bench/nn.sh)
PyTorch's side of bench/nn/mnist_epoch.lua: the same epoch, the same timing."""
import sys
import time

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0)

import numpy as np
import torch

d = sys.argv[1] if len(sys.argv) > 1 else "data/mnist"
torch.set_num_threads(1)
torch.manual_seed(1)
x = np.fromfile(d + "/train-images-idx3-ubyte", dtype=np.uint8, offset=16).reshape(60000, 784)
y = np.fromfile(d + "/train-labels-idx1-ubyte", dtype=np.uint8, offset=8)
X = torch.from_numpy(x[5000:].astype(np.float32) / 255)
Y = torch.from_numpy(y[5000:].astype(np.int64))
m = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                        torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.Adam(m.parameters(), lr=1e-3)


def epoch(limit=None):
    perm = torch.randperm(X.shape[0])
    for s, i in enumerate(range(0, X.shape[0], 100)):
        idx = perm[i:i + 100]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(X.index_select(0, idx)), Y.index_select(0, idx)).backward()
        opt.step()
        if limit and s + 1 >= limit:
            return


epoch(50)
best = float("inf")
for _ in range(2):
    t = time.perf_counter()
    epoch()
    best = min(best, time.perf_counter() - t)
print("pytorch %s mnist epoch: %.3f s" % (torch.__version__, best))
