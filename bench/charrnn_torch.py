"""PyTorch side of bench/charrnn.lua: one measurement per process, printed as one line
`RESULT key=value ...`. Run with Debian's /usr/bin/python3 (python3-torch).

  /usr/bin/python3 bench/charrnn_torch.py train --cell lstm --hidden 128
  /usr/bin/python3 bench/charrnn_torch.py sample --hidden 512 --chars 1000

The model is the char-RNN of bench/charrnn.lua: Embedding(V, E) -> {LSTM, GRU, RNN(tanh)}
(E, H, L layers) -> Linear(H, V); a training step is zero_grad, forward, mean cross-entropy,
backward, clip_grad_norm_(5), Adam(lr 2e-3). Sampling runs batch-1 steps under no_grad with
softmax + multinomial. Threads: torch.set_num_threads(1) always; BLAS threads come from
OPENBLAS_NUM_THREADS in the environment (Debian's PyTorch calls OpenBLAS for its GEMMs and
does not steer its threads, so 2 OpenMP threads on top of 2 BLAS threads would fight over
the 2 cores)."""
import argparse
import resource
import statistics
import time

import sys


def make_parser():
    ap = argparse.ArgumentParser(description="PyTorch side of bench/charrnn.lua (one measurement).")
    ap.add_argument("mode", choices=["train", "sample"])
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--chars", type=int, default=2000)
    return ap


if __name__ == "__main__" and ("-h" in sys.argv[1:] or "--help" in sys.argv[1:]):
    make_parser().parse_args()  # prints the help and exits before torch is imported

import torch  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class CharRNN(torch.nn.Module):
    def __init__(self, cell, V, E, H, L):
        super().__init__()
        self.emb = torch.nn.Embedding(V, E)
        kinds = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
        self.rnn = kinds[cell](E, H, L)
        self.out = torch.nn.Linear(H, V)

    def forward(self, x, state=None):
        y, state = self.rnn(self.emb(x), state)
        return self.out(y), state


def blocks(fn, warmup, nblocks, per_block):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(nblocks):
        t = time.perf_counter()
        for _ in range(per_block):
            fn()
        times.append((time.perf_counter() - t) / per_block)
    return statistics.median(times), min(times)


def main():
    a = make_parser().parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    V, E, H, L, B, T = a.vocab, a.embed, a.hidden, a.layers, a.batch, a.seq
    model = CharRNN(a.cell, V, E, H, L)
    if a.mode == "train":
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        x = torch.randint(0, V, (T, B))
        y = torch.randint(0, V, (T, B))

        def step():
            opt.zero_grad()
            logits, _ = model(x)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, V), y.view(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()

        med, best = blocks(step, a.warmup, a.blocks, a.steps)
        print("RESULT impl=torch mode=train cell=%s hidden=%d ms=%.3f best_ms=%.3f rss_mb=%.1f "
              "version=%s" % (a.cell, H, med * 1e3, best * 1e3, peak_rss_mb(), torch.__version__))
    else:
        model.eval()

        def sample(n):
            x = torch.zeros(1, 1, dtype=torch.long)
            state = None
            with torch.no_grad():
                for _ in range(n):
                    logits, state = model(x, state)
                    p = torch.softmax(logits[0, 0], -1)
                    x[0, 0] = torch.multinomial(p, 1)[0]

        per = max(1, a.chars // a.blocks)
        med, best = blocks(lambda: sample(per), 1, a.blocks, 1)
        print("RESULT impl=torch mode=sample hidden=%d chars_per_s=%.1f best_chars_per_s=%.1f "
              "rss_mb=%.1f" % (H, per / med, per / best, peak_rss_mb()))


if __name__ == "__main__":
    main()
