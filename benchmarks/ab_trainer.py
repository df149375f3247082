"""A/B of the trainer's throughput with stall probes off: run-steps per second of
``train_batch`` (GD, whitened d x d problem, m = 8 d, H hidden layers of width d),
best of 5, one thread (or THREADS). Run it once per source tree (PYTHONPATH) and
compare:

    PYTHONPATH=OLD_TREE python benchmarks/ab_trainer.py B STEPS d H [THREADS]
    PYTHONPATH=NEW_TREE python benchmarks/ab_trainer.py B STEPS d H [THREADS]

(results/trainer-ab.md holds the comparison of the named-state trainer against the
one before it).
"""

import sys
import time

import sweepengine as se
from sweepengine.problems import make_problem
from sweepengine.stats import Stats
from sweepengine.training import reference

B, N, d, H = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 1
X, Y = make_problem(
    "whitened", {"d_x": d, "d_y": d, "m": 8 * d, "singular_values": [4.0, 2.0, 1.0, 0.5]}
)
dims = [d] * (H + 2)
ref = reference(Stats.from_data(X, Y), dims)
W0 = [se.init_weights(dims, "gaussian", 0.1, seed=b) for b in range(B)]
kw = dict(stall={"min_length": 10**9}, final_probe=False, stop_at_target=False, threads=threads,
          ref=ref)  # fmt: skip
se.train_batch(X, Y, W0, "gd", 0.01, 10, **kw)  # load the cache
best = 1e9
for _ in range(5):
    t = time.perf_counter()
    se.train_batch(X, Y, W0, "gd", 0.01, N, **kw)
    best = min(best, time.perf_counter() - t)
print(f"{B * N / best:.0f}")
