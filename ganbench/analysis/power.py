"""Power before the run: the smallest change a suite can detect, and the seeds a target change needs.

A verdict is Welch's t between an arm and the reference at the Bonferroni level α/m of the family
(see `inference`); for planning each comparison is taken at that level, with n seeds per arm and the seed SD σ of a pilot
study on the analysis scale (log for FID and IS). The power against a true difference δ is that
of the report's own test, simulated: 20 000 seeded pairs of n-seed samples, Welch's t with its
Welch–Satterthwaite degrees of freedom at the tail that keeps level α/m whatever the variance ratio
(`welch_bound.critical_tail`). (The noncentral t with 2n − 2 degrees of
freedom overstates it by up to 4 points at 8 seeds: Welch's degrees of freedom are fewer.)
`tests/test_calibration.py` checks the printed power against an independent simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

from ganbench.analysis import welch_bound
from ganbench.analysis.inference import ALPHA
from ganbench.metrics.registry import compared_on_log_scale

POWER = 0.8
MAX_SEEDS = 200
DEFAULT_TARGET = "10%"  # the change in FID (or IS) `plan` sizes seeds for unless --target says otherwise


@dataclass(frozen=True)
class PilotSD:
    metric: str
    sd: float  # pooled within-arm SD over seeds, on the analysis scale
    scale: str  # 'log' (the SD of log values; changes are % changes) or 'raw'
    source: str
    dof: int = 0  # its degrees of freedom (0: not known)
    arm_sds: tuple[tuple[str, float, int], ...] = ()  # (arm, its own SD, its dof) where the pilot has arms

    def sd_range(self, level: float = 0.9) -> tuple[float, float]:
        """The χ² interval of σ at `level` from `dof` degrees of freedom (NaN without them): with 3 dof the
        true σ may be half or three times the estimate, and the detectable change with it."""
        if self.dof < 1:
            return math.nan, math.nan
        tail = (1 - level) / 2
        return (self.sd * math.sqrt(self.dof / sps.chi2.ppf(1 - tail, self.dof)),
                self.sd * math.sqrt(self.dof / sps.chi2.ppf(tail, self.dof)))


# Measured on the quick study as committed up to 49f301b (`git show 49f301b:results/quick`: 14 arms × 3 seeds,
# 800 steps in bf16, 28 degrees of freedom), pooled within-arm SD (`pilot_from`). The quick study now
# committed trains 400 steps in fp32, too short to stand for a longer study: its runs are far from converged
# and their seeds scatter twice as much (log FID 0.107); results/loo-pilot (the full recipe at 3 000 steps)
# agrees with these (log FID 0.0555). `plan --pilot RESULTS_DIR` takes a study's own.
BUILT_IN = {p.metric: p for p in (
    PilotSD("fid_fmnist", 0.05399, "log", "quick study at 49f301b (800 steps), 14 arms × 3 seeds (28 dof)", 28),
    PilotSD("kid_fmnist", 0.05809, "raw", "quick study at 49f301b (800 steps), 14 arms × 3 seeds (28 dof)", 28),
    PilotSD("precision_fmnist", 0.02755, "raw", "quick study at 49f301b (800 steps), 14 arms × 3 seeds (28 dof)", 28),
    PilotSD("recall_fmnist", 0.03202, "raw", "quick study at 49f301b (800 steps), 14 arms × 3 seeds (28 dof)", 28),
    PilotSD("isc_fmnist", 0.01982, "log", "quick study at 49f301b (800 steps), 14 arms × 3 seeds (28 dof)", 28),
)}


def scale_of(metric: str) -> str:
    return "log" if compared_on_log_scale(metric) else "raw"


REPETITIONS = 20_000


def _welch_draws(seeds: int, ratio: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded normal samples of two arms of `seeds` runs, the first with `ratio` times the second's SD:
    (difference of means, Welch's standard error, Welch–Satterthwaite dof) per repetition, in units of the
    second arm's σ (a true δ only shifts the difference)."""
    rng = np.random.default_rng(1_000 + seeds)
    x, y = rng.standard_normal((2, REPETITIONS, seeds))
    x = x * ratio
    vx, vy = x.var(axis=1, ddof=1) / seeds, y.var(axis=1, ddof=1) / seeds
    dof = (vx + vy) ** 2 / (vx**2 / (seeds - 1) + vy**2 / (seeds - 1))
    return x.mean(axis=1) - y.mean(axis=1), np.sqrt(vx + vy), dof


def power_of(delta: float, sd: float, seeds: int, family: int, alpha: float = ALPHA,
             sd_arm: float | None = None) -> float:
    """Power of one comparison (n seeds per arm, Welch's t at `welch_bound`'s level α/family) against a true δ;
    `sd` the reference's seed SD, `sd_arm` the arm's where it differs (Welch's own power then: the equal-SD
    figure overstated it by ≈ 5 points at the SD ratios of loo-cpu)."""
    if seeds < 2 or sd <= 0:
        return math.nan
    from ganbench.process_cache import PROCESS  # the per-process memo (a leaf module)

    ratio = round((sd_arm or sd) / sd, 3)
    difference, se, dof = PROCESS.get("welch_draws", (seeds, ratio), lambda: _welch_draws(seeds, ratio), keep=64)
    tail = welch_bound.critical_tail(alpha / max(family, 1), seeds, seeds)  # the report's test (`welch_bound`)
    critical = sps.t.isf(tail / 2, dof)
    return float(np.mean(np.abs(abs(delta) / sd + difference) / se > critical))


def min_detectable(sd: float, seeds: int, family: int, alpha: float = ALPHA, power: float = POWER,
                   sd_arm: float | None = None) -> float:
    """The smallest true difference (analysis scale) detected with `power` (`sd_arm`: see `power_of`)."""
    if seeds < 2 or sd <= 0:
        return math.inf
    low, high = 0.0, max(sd, sd_arm or 0.0)
    while power_of(high, sd, seeds, family, alpha, sd_arm) < power:
        high *= 2
    for _ in range(60):  # bisection: power rises with δ
        mid = (low + high) / 2
        low, high = (mid, high) if power_of(mid, sd, seeds, family, alpha, sd_arm) < power else (low, mid)
    return high


def seeds_needed(delta: float, sd: float, family: int, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest seeds per arm that detect a true difference δ with `power`; None past MAX_SEEDS. The
    noncentral t (which overstates Welch's power) gives where to start counting."""
    start = 2
    for seeds in range(2, MAX_SEEDS + 1):
        dof = 2 * seeds - 2
        critical = sps.t.ppf(1 - alpha / (2 * max(family, 1)), dof)
        if sps.nct.sf(critical, dof, abs(delta) / (sd * math.sqrt(2 / seeds))) >= power:
            start = seeds
            break
    else:
        return None
    for seeds in range(start, MAX_SEEDS + 1):
        if power_of(delta, sd, seeds, family, alpha) >= power:
            return seeds
    return None


def as_change(delta: float, scale: str) -> str:
    """A difference on the analysis scale in words: '12.3 %' on the log scale, else the raw value."""
    return f"{100 * math.expm1(delta):.1f} %" if scale == "log" else f"{delta:.3g}"


def target_applies(target: str, scale: str) -> bool:
    """A % target is a change of a log-scale metric (FID, IS); a plain number a raw difference."""
    return target.strip().endswith("%") == (scale == "log")


def to_delta(target: str, scale: str) -> float:
    """A target change as given on the command line ('10%' on a log-scale metric, or a raw number) → δ."""
    text = target.strip()
    if text.endswith("%"):
        if scale != "log":
            raise ValueError(f"--target {target}: a % change applies to FID and IS; give a raw difference here")
        return math.log1p(float(text[:-1]) / 100)
    return float(text)


def pilot_from(results_dir: str | Path, metric: str) -> PilotSD | None:
    """The pooled within-arm seed SD of `metric` in a finished study (its completed runs' final values)."""
    from ganbench.analysis import stats
    from ganbench.analysis.results import load_results, metric_directions

    frame = load_results(results_dir)
    if metric not in set(frame["metric"].dropna()):
        return None
    values = stats.run_values(frame, metric, metric_directions(frame).get(metric)).dropna(subset=["value"])
    scale = scale_of(metric)
    y = np.log(values["value"].to_numpy(float)) if scale == "log" else values["value"].to_numpy(float)
    values = values.assign(y=y)
    # one group per distinct set of runs: arms with equal configs (a reference shared by two parts, an arm
    # trained to the reference's steps) share runs, and counting them twice inflated the dof (loo-cpu: 80 → 48)
    sets: dict[frozenset, tuple[str, np.ndarray]] = {}
    for arm, group in values.groupby("arm", sort=False):
        sets.setdefault(frozenset(group["run_id"]), (str(arm), group["y"].to_numpy()))
    groups = [(arm, g) for arm, g in sets.values() if len(g) > 1]
    dof = sum(len(g) - 1 for _, g in groups)
    if not dof:
        return None
    sd = math.sqrt(sum((len(g) - 1) * g.var(ddof=1) for _, g in groups) / dof)
    return PilotSD(metric, sd, scale, f"{results_dir}, pooled over {len(groups)} run sets ({dof} dof)", dof,
                   tuple((arm, float(g.std(ddof=1)), len(g) - 1) for arm, g in groups))
