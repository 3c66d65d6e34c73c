"""`ganbench init NAME`: a commented starter suite, ready for `ganbench plan` and `ganbench run`.

The template is a real suite (tested: `load_suite` accepts it and `plan` plans it): a leave-one-out
of four folklore hacks from the dcgan recipe on Fashion-MNIST, fp32, sized for a laptop's CPU, with
every choice a new user makes explained beside it.
"""

from __future__ import annotations

STARTER = """\
# {name}: a ganbench suite. Check it with `ganbench plan {file}` (arms, run ids, cost here, power),
# train it with `ganbench run {file}`, report it with `ganbench report {file}`.
# Every key a suite may hold: `ganbench suite-keys`; every hack: `ganbench hacks`; every knob: `ganbench knobs`.
name: {name}
description: Which of four folklore hacks can the DCGAN recipe lose on Fashion-MNIST?
dataset: fashion-mnist          # `ganbench data list`; cifar10 and celeba need their files (--data-root)
preset: dcgan                   # the recipe the arms start from: vanilla, dcgan, ganhacks, modern
hacks: [batch_norm, leaky_relu, label_smoothing, adam_beta1_05]   # the hacks under study
# leave_one_out: the preset plus the hacks, and each hack removed in turn (5 arms here);
# add_one_in: the preset without them and each added alone; full_factorial: all 2^k combinations;
# or explicit arms: `arms: {{mine: {{hacks: [...], set: {{lr_d: 4.0e-4}}}}}}` with `reference: mine`.
design: leave_one_out
seeds: 5                        # per arm; below 5 the report makes no verdicts (exploratory only)
steps: 500                      # training steps per run (or budget: {{flops: 3.0e13}} for equal compute)
base:                           # knobs for every arm, below the hacks (`ganbench knobs`)
  precision: fp32               # bf16 only on a GPU or a CPU with AMX / AVX512-BF16 (11-15x slower elsewhere)
  log_every: 25
  checkpoint_every: 125         # a stopped sweep resumes from here: `ganbench run` again
# How each run is scored: every 125 steps (the curve) and at the end, on 2 000 generated images against
# the whole test split, with the dataset's own metrics (FID, KID, precision/recall, mode coverage).
evaluation: {{every: 125, samples: 2000, reference_samples: 0, metrics: auto}}
# The report's one family of comparisons: every arm against the reference on these metrics, with
# Bonferroni verdicts and simultaneous intervals (a verdict exactly when its interval excludes 0).
analysis: {{primary: fid_fmnist, verdicts: [fid_fmnist, kid_fmnist, precision_fmnist, recall_fmnist]}}
"""


def starter_suite(name: str, file: str) -> str:
    """The starter suite's text for a suite called `name`, saved as `file`."""
    return STARTER.format(name=name, file=file)
