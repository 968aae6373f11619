"""PyTorch side of bench/word_lm.lua: one measurement per process, printed as one line
`RESULT key=value ...`. Run with Debian's /usr/bin/python3 (python3-torch).

  /usr/bin/python3 bench/word_lm_torch.py [--blocks 5 --steps 10 --warmup 5]

The model is the word model of "Styles of Truncated Backpropagation" (models/word_rnn.lua):
Embedding(10000, 50) -> dropout(0.2) -> RNN(tanh, 50 -> 100) -> dropout(0.2) ->
Linear(100, 10000); a training step (TF style, one window of 20 steps, batch 32) is
zero_grad, forward from the carried state, mean cross-entropy over all 640 words and the whole
vocabulary, backward, Adam (lr 1e-3). Threads: torch.set_num_threads(1) always; BLAS threads
come from OPENBLAS_NUM_THREADS in the environment (bench/charrnn_torch.py says why)."""
import argparse
import resource
import statistics
import sys
import time


def make_parser():
    ap = argparse.ArgumentParser(description="PyTorch side of bench/word_lm.lua (one measurement).")
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--embed", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=20)
    ap.add_argument("--keep", type=float, default=0.8)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    return ap


if __name__ == "__main__" and ("-h" in sys.argv[1:] or "--help" in sys.argv[1:]):
    make_parser().parse_args()  # prints the help and exits before torch is imported

import torch  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class WordRNN(torch.nn.Module):
    def __init__(self, V, E, H, keep):
        super().__init__()
        self.emb = torch.nn.Embedding(V, E)
        self.drop = torch.nn.Dropout(1 - keep)
        self.rnn = torch.nn.RNN(E, H, nonlinearity="tanh")
        self.out = torch.nn.Linear(H, V)

    def forward(self, x, state):
        y, state = self.rnn(self.drop(self.emb(x)), state)
        return self.out(self.drop(y)), state


def blocks(fn, warmup, nblocks, per_block):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(nblocks):
        t = time.perf_counter()
        for _ in range(per_block):
            fn()
        times.append((time.perf_counter() - t) / per_block)
    return statistics.median(times), min(times), max(times)


def main():
    a = make_parser().parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    V, B, T = a.vocab, a.batch, a.seq
    model = WordRNN(V, a.embed, a.hidden, a.keep)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, V, (T, B))
    y = torch.randint(0, V, (T, B))
    carried = [torch.zeros(1, B, a.hidden)]

    def step():
        opt.zero_grad()
        logits, state = model(x, carried[0])
        loss = torch.nn.functional.cross_entropy(logits.view(-1, V), y.view(-1))
        loss.backward()
        opt.step()
        carried[0] = state.detach()

    med, best, worst = blocks(step, a.warmup, a.blocks, a.steps)
    print("RESULT impl=torch ms=%.3f best_ms=%.3f worst_ms=%.3f rss_mb=%.1f version=%s"
          % (med * 1e3, best * 1e3, worst * 1e3, peak_rss_mb(), torch.__version__))


if __name__ == "__main__":
    main()
