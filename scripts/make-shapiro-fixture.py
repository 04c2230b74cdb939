"""Reference values for test/shapiro-wilk.test.ts: seeded samples and SciPy's Shapiro-Wilk W and p.
Run: python3 scripts/make-shapiro-fixture.py > test/fixtures/shapiro-wilk.json"""
import json
import numpy as np
from scipy.stats import shapiro

rng = np.random.default_rng(7)
cases = []
for n in [3, 4, 5, 7, 11, 12, 50, 500, 2000]:
    for kind, draw in [("uniform", rng.uniform), ("exponential", rng.exponential), ("normal", rng.normal)]:
        x = [round(float(v), 6) for v in draw(size=n)]
        w, p = shapiro(x)
        cases.append({"kind": kind, "n": n, "x": x, "w": float(w), "p": float(p)})
print(json.dumps({"generator": "python3 scripts/make-shapiro-fixture.py (numpy default_rng(7), scipy.stats.shapiro)", "cases": cases}))
