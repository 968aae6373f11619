# The same small-op loop in PyTorch: `a + b` on 4-element float32 tensors, ns per call.
import sys, time
if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print("usage: /usr/bin/python3 bench/small_op_torch.py [iterations]   (default 1e6; run by bench/run.sh)")
    sys.exit(0)
import torch
torch.set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
a = torch.tensor([1., 2., 3., 4.])
b = torch.tensor([5., 6., 7., 8.])
best = float("inf")
for _ in range(5):
    t0 = time.process_time()
    for _ in range(n):
        c = a + b
    best = min(best, time.process_time() - t0)
print("pytorch small op (a + b, 4 floats): %.0f ns per call (torch %s)" % (best / n * 1e9, torch.__version__))
