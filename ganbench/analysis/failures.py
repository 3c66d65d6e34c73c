"""How a completed run failed, if it did: three labels, each defined here and in the report.

- failed to learn: its final FID is at or above the FID of uniform pixel noise against the
  same reference, extractor and sample count (measured by the evaluation and carried in each
  FID row as `uniform_noise_fid`), less an allowance for evaluation noise (`NOISE_ALLOWANCE`):
  its images are no closer to the data than noise.
- mode collapse: a run that learned whose generated class histogram is far from the data's:
  KL(generated ‖ real) above ln 2 nats (as concentrated as an even spread over half the
  classes), or at most 3 of the 10 classes holding ≥ 1 % of the samples.
- D wins: the discriminator's loss at the end of training is within 0.05 nats of the lowest
  value its own label targets allow. With one-sided smoothing, jitter or flipped labels that
  floor is not 0: a perfect D still pays the binary entropy of its expected targets,
  H(E[target | real]) + H(E[target | fake]) (0.33 at smoothing 0.1, 0.60 with 5 % flips too).

A label that cannot be decided (no FID row, no class histogram, no logged loss) is NaN and
shown as unavailable, never as "no".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ganbench.config import TrainConfig
from ganbench.metrics.registry import value_name

# A run whose FID sits within evaluation noise of the noise floor has not learned, even when it lands a hair
# below it: loo-cpu's run 0f00069464cc (-nonsaturating_loss, seed 0) scored 65.572 against a floor of 65.578
# and its sample grid is noise. The allowance is the larger of 3 SDs of the run's own final draws (its
# evaluation noise; one-sided, ≈ 0.1 % of draws fall further) and 1 % of the floor (the floor is one
# measurement with noise of its own). Learned runs are nowhere near it: in the committed studies the worst
# learned final FID is 34.0, 52 % of the floor, and the failed ones sit at 65.6–85.1.
NOISE_SDS, NOISE_FLOOR_SHARE = 3.0, 0.01
MODE_KL_THRESHOLD = math.log(2)
MIN_CLASSES = 3
D_WINS_EPSILON = 0.05
LABELS = ("failed_to_learn", "mode_collapse", "d_wins")
DEFINITIONS = (
    "failed to learn: final FID ≥ the FID of uniform pixel noise against the same reference, extractor and "
    f"sample count (measured once per setting and cached), less an allowance for evaluation noise: the larger of "
    f"{NOISE_SDS:g} SDs of the run's final draws and {NOISE_FLOOR_SHARE:.0%} of that FID",
    f"mode collapse (runs that learned): class-histogram KL(generated ‖ real) > ln 2 = {MODE_KL_THRESHOLD:.3f} nats "
    f"(as concentrated as an even spread over half the classes), or ≤ {MIN_CLASSES} classes holding ≥ 1 % of the "
    "samples",
    f"D wins: final logged D loss within {D_WINS_EPSILON} nats of the floor its label targets allow, "
    "H(E[real target]) + H(E[fake target]) after smoothing, jitter and flips (0 without them); "
    "unavailable for hinge, least-squares and Wasserstein D losses, which have no such floor",
)


def binary_entropy(p: float) -> float:
    """H(p) in nats; 0 at p ∈ {0, 1}."""
    if p <= 0 or p >= 1:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


LABEL_KNOBS = ("real_label", "fake_label", "label_smoothing", "real_label_jitter", "fake_label_jitter", "label_flip_p")


def d_loss_floor(cfg: TrainConfig) -> float:
    """The smallest expected D loss (sum of the real and fake BCE means) under a run's targets:
    a D that cannot predict the label noise does best by outputting each class's expected target."""
    expected_real, expected_fake = cfg.expected_targets()
    return binary_entropy(expected_real) + binary_entropy(expected_fake)


def noise_allowance(noise_fid: float, draw_sd: float) -> float:
    """How far below the noise floor a final FID may lie and still be noise (see NOISE_SDS)."""
    spread = NOISE_SDS * draw_sd if np.isfinite(draw_sd) else 0.0
    return max(spread, NOISE_FLOOR_SHARE * noise_fid)


def _final(frame: pd.DataFrame, metric: str, column: str = "value") -> pd.Series:
    rows = frame[frame["metric"] == metric].sort_values("step")
    if rows.empty or column not in rows:
        return pd.Series(dtype=float)
    return rows.groupby("run_id").tail(1).set_index("run_id")[column]  # the last evaluation's, NaN included


def failure_labels(frame: pd.DataFrame, training: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per completed run: arm, run_id and the three labels (1.0 / 0.0 / NaN)."""
    runs = frame.drop_duplicates(["arm", "run_id"])
    runs = runs[runs["status"] == "completed"]
    measured = set(frame["metric"].dropna())
    fid_metric = next((m for m in (value_name("fid", "fmnist"), "fid") if m in measured), None)
    fid = _final(frame, fid_metric) if fid_metric else pd.Series(dtype=float)
    noise = _final(frame, fid_metric, "uniform_noise_fid") if fid_metric else pd.Series(dtype=float)
    draw_sd = _final(frame, fid_metric, "draw_sd") if fid_metric else pd.Series(dtype=float)
    kl, classes = _final(frame, value_name("modes_kl", "fmnist")), _final(frame, value_name("modes_covered", "fmnist"))
    loss_d = pd.Series(dtype=float)
    if training is not None and not training.empty and "loss_d" in training:
        loss_d = training.sort_values("step").groupby("run_id").tail(1).set_index("run_id")["loss_d"]
    rows = []
    for run in runs.itertuples():
        f, n = fid.get(run.run_id, math.nan), noise.get(run.run_id, math.nan)
        failed = float(f >= n - noise_allowance(n, draw_sd.get(run.run_id, math.nan))) \
            if np.isfinite(f) and np.isfinite(n) else math.nan
        k, c = kl.get(run.run_id, math.nan), classes.get(run.run_id, math.nan)
        if failed == 1.0:
            collapse = math.nan  # undecidable: a generator of noise has no modes to collapse onto (it failed to learn)
        elif np.isfinite(k) or np.isfinite(c):
            collapse = float((np.isfinite(k) and k > MODE_KL_THRESHOLD) or (np.isfinite(c) and c <= MIN_CLASSES))
        else:
            collapse = math.nan
        knobs = {k: v for k, v in run._asdict().items() if not (isinstance(v, float) and math.isnan(v))}
        floor = d_loss_floor(TrainConfig().replace(**{k: knobs[f"knob_{k}"] for k in LABEL_KNOBS if f"knob_{k}" in knobs}))
        if knobs.get("knob_d_loss", "bce") != "bce":
            floor = math.nan  # hinge, least-squares and Wasserstein losses have no entropy floor: undecidable
        final_d = loss_d.get(run.run_id, math.nan)
        wins = float(final_d - floor < D_WINS_EPSILON) if np.isfinite(final_d) and np.isfinite(floor) else math.nan
        rows.append({"arm": run.arm, "run_id": run.run_id, "failed_to_learn": failed, "mode_collapse": collapse,
                     "d_wins": wins, "d_loss_floor": floor})
    return pd.DataFrame(rows, columns=["arm", "run_id", *LABELS, "d_loss_floor"])


def failure_rates(labels: pd.DataFrame) -> pd.DataFrame:
    """Per arm: the share of completed runs with each label (over the runs where it is decided),
    and how many runs it was decided on."""
    rows = []
    for arm, group in labels.groupby("arm", sort=False):
        row = {"arm": arm}
        for label in LABELS:
            decided = group[label].dropna()
            row[label] = float(decided.mean()) if len(decided) else math.nan
            row[f"{label}_n"] = len(decided)
        rows.append(row)
    return pd.DataFrame(rows)
