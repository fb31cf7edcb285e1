"""Reference values for test/unit/simulate-summary.test.ts: the 95 % Wilson score interval,
computed independently of the closed form in services/cli/simulate/simulationSummary.ts.

Each end is found numerically (mpmath, 50 digits) as a root of the score test's boundary
    (k/n - p)^2 = z^2 p (1 - p) / n,
with z the 0.975 quantile of the standard normal from mpmath's inverse error function.
At k = 0 the lower end is 0 and at k = n the upper end is 1 (the score statistic is 0 there).

Run: python3 test/unit/reference/wilson_interval.py   (needs mpmath)
"""
import mpmath as mp

mp.mp.dps = 50
z = mp.sqrt(2) * mp.erfinv(mp.mpf('0.95'))

def boundary(k, n):
    phat = mp.mpf(k) / n
    return lambda p: (phat - p) ** 2 - z ** 2 * p * (1 - p) / n

def bisect(f, a, b):
    """The root of f in [a, b], where f(a) and f(b) differ in sign: 200 halvings."""
    fa = f(a)
    for _ in range(200):
        m = (a + b) / 2
        if (f(m) > 0) == (fa > 0):
            a, fa = m, f(m)
        else:
            b = m
    return (a + b) / 2

def wilson(k, n):
    f = boundary(k, n)
    phat = mp.mpf(k) / n
    # f >= 0 at 0 and 1 and < 0 strictly between its two roots, around phat.
    inside = mp.mpf('1e-40')
    lo = mp.mpf(0) if k == 0 else bisect(f, mp.mpf(0), min(phat, 1 - inside))
    hi = mp.mpf(1) if k == n else bisect(f, max(phat, inside), mp.mpf(1))
    return lo, hi

for k, n in [(0, 200), (1, 200), (10, 200), (39, 200), (100, 200), (199, 200), (200, 200), (3, 7), (0, 1), (1, 1), (5000, 10000), (12, 10000)]:
    lo, hi = wilson(k, n)
    print(f"[{k}, {n}, {mp.nstr(lo, 17)}, {mp.nstr(hi, 17)}],")
