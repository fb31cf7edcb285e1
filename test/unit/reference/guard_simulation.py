"""Reference for binomialUpperLimit (test/support/guardSimulation.ts), by SciPy 1.17.1:
the largest k such that P(Binomial(n, p) >= k + 1) > tail is k* = min{k : P(X >= k) <= tail} - 1.
"""
from scipy.stats import binom

for n, p, tail in [(300, 0.05, 0.001), (400, 0.05, 0.001), (200, 0.05, 0.01), (200, 0.05, 0.001)]:
    k = next(k for k in range(n + 1) if binom.sf(k - 1, n, p) <= tail)
    print(f'binomialUpperLimit({n}, {p}, {tail}) = {k - 1}   (P(X >= {k}) = {binom.sf(k - 1, n, p):.3g})')
