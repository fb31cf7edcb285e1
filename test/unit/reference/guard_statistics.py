"""Reference values for test/unit/stats-tests.test.ts and test/unit/guard-checks.test.ts,
computed independently of services/stats with SciPy (1.17.1) and exact rationals.

Run: python3 test/unit/reference/guard_statistics.py  (needs scipy). Each printed value is
pasted into the tests with the precision stated there.
"""
import math
from fractions import Fraction

from scipy.optimize import brentq
from scipy.stats import norm, t


def one_sided_boundary(V, rho, alpha):
    """Howard et al. (2021) one-sided normal mixture: the s where
    2 sqrt(rho/(V+rho)) exp(s^2/(2(V+rho))) Phi(s/sqrt(V+rho)) = 1/alpha."""
    f = lambda s: 0.5 * math.log(4 * rho / (V + rho)) + s * s / (2 * (V + rho)) + norm.logcdf(s / math.sqrt(V + rho)) - math.log(1 / alpha)
    return brentq(f, 0, 1e9, xtol=1e-300, rtol=1e-15, maxiter=500)


def best_rho(m, alpha):
    """Two-sided normal mixture rho optimal at intrinsic time m (Howard et al. 2021)."""
    l = 2 * math.log(1 / alpha)
    return m / (l + math.log(1 + l))


def guardrail_margin(n_c, sd_c, n_t, sd_t, planned, alpha):
    """One-sided margin v*u(1/v) of the difference of means, mixture tuned to `planned` users per variant (rho at 2 alpha)."""
    v = sd_c**2 / n_c + sd_t**2 / n_t
    rho = best_rho(planned / (sd_c**2 + sd_t**2), 2 * alpha)
    return v * one_sided_boundary(1 / v, rho, alpha)


print('t.ppf')
for p, df in [(0.999999, 1), (0.975, 10), (1e-9, 3), (0.999, 2.5), (0.9995, 1000)]:
    print(f'  t.ppf({p}, {df}) = {t.ppf(p, df)!r}')
print('norm.cdf')
for z in [1.96, -3.0, 0.0]:
    print(f'  norm.cdf({z}) = {norm.cdf(z)!r}')

print('one-sided normal mixture boundary u(V; rho, alpha)')
for V, rho, a in [(100, 10, 0.05), (1e4, 500, 0.001), (50, 200, 0.00133)]:
    print(f'  u({V}, {rho}, {a}) = {one_sided_boundary(V, rho, a)!r}')
print('optimal rho')
for m, a in [(12.5, 0.08), (1e4, 0.1)]:
    print(f'  best_rho({m}, {a}) = {best_rho(m, a)!r}')

print('guardrail margins (guard-checks.test.ts)')
# Two arms, one guardrail: the test gets the guardrail share, 0.8 * 0.05 = 0.04.
print(f'  n=1000/1000 sd 20, planned 10000, alpha 0.04: {guardrail_margin(1000, 20, 1000, 20, 10_000, 0.04)!r}')
# Three arms, one guardrail: two tests, 0.04 / 2 = 0.02 each.
print(f'  n=1000/1000 sd 20, planned 10000, alpha 0.02: {guardrail_margin(1000, 20, 1000, 20, 10_000, 0.02)!r}')

print('variance of stored sums, exactly (Fraction)')
for xs in [[10**7 + 1, 10**7 + 2, 10**7 + 4], [123456789.5, 123456790.25, 123456791.75, 123456788.0]]:
    n = len(xs)
    S = 0.0
    Q = 0.0
    for x in xs:  # the sums as doubles, accumulated in order like the aggregator
        S += x
        Q += x * x
    exact = (Fraction(Q) - Fraction(S) ** 2 / n) / (n - 1)
    print(f'  values {xs}: sum={S!r} sumSquares={Q!r} variance={float(exact)!r}')

print('sequential SRM, log BF by lgamma (prior 100*w)')
def log_bf(counts, weights, c=100):
    prior = [c * w for w in weights]
    lb = lambda a: sum(math.lgamma(x) for x in a) - math.lgamma(sum(a))
    return lb([a + x for a, x in zip(prior, counts)]) - lb(prior) - sum(x * math.log(w) for x, w in zip(counts, weights) if x)
for counts in [[100, 0], [0, 100], [97, 3], [50, 50]]:
    print(f'  {counts} vs 50/50: {log_bf(counts, [0.5, 0.5])!r} (log(1/0.01) = {math.log(100)!r})')
