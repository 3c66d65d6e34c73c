"""Evaluation protocols of the literature, so a number can sit beside a published one.

A protocol fixes the evaluation knobs a paper used (a suite's `evaluation: {protocol: NAME}`
sets them; `eval_protocol` records the name in the run id and in every metric row) and carries
the published figures measured under it, with their source. What ganbench cannot reproduce of
the paper's setting (its architecture, its hyperparameter search) is said beside the figures.
Torch-free: the report and the suite loader read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ganbench.errors import Registry


@dataclass(frozen=True)
class Published:
    setting: str  # what the paper calls the method
    value: float
    spread: float | None  # the ± the paper gives (its meaning in `Protocol.spread`), None where it gives none


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str  # one line, written into every metric row's provenance
    knobs: Mapping[str, Any]  # evaluation knobs the protocol fixes
    metric: str  # the metric the published figures are in
    source: str
    spread: str  # what the published ± means
    caveats: str  # what differs between the paper's runs and ours
    published: tuple[Published, ...] = field(default=())
    dataset: str = ""


PROTOCOLS: Registry[Protocol] = Registry("evaluation protocol")


def register_protocol(protocol: Protocol) -> Protocol:
    return PROTOCOLS.register(protocol.name, protocol)


register_protocol(Protocol(
    name="lucic2018",
    description="Lucic et al. 2018: Inception FID, 10 000 generated vs 10 000 test images, gray tiled to RGB and "
                "resized to 299 px; best and final evaluation reported",
    knobs={"metrics": "fid", "eval_samples": 10_000, "eval_reference_samples": 10_000, "eval_split": "test"},
    metric="fid",
    source="Lucic, Kurach, Michalski, Gelly & Bousquet 2018, 'Are GANs Created Equal? A Large-Scale Study' "
           "(NeurIPS; arXiv:1711.10337), Fashion-MNIST results",
    spread="the paper's ± over its best runs (their hyperparameter search, several seeds each)",
    caveats="Their figures are the best of a large hyperparameter search on their InfoGAN-style network; ours are "
            "one fixed setting per arm over seeds. Read the comparison as 'same protocol, different search', "
            "not as a reproduction.",
    published=(Published("NS GAN", 26.5, 1.6), Published("MM GAN", 29.6, None), Published("WGAN GP", 24.5, None)),
    dataset="fashion-mnist",
))


def get_protocol(name: str) -> Protocol:
    return PROTOCOLS[name]


def protocol_problems(protocol: str, knobs: Mapping[str, Any]) -> list[str]:
    """Knob values that break `protocol` (empty when the run follows it)."""
    if not protocol:
        return []
    spec = get_protocol(protocol)
    problems = []
    for knob, value in spec.knobs.items():
        have = knobs.get(knob)
        if knob == "metrics":
            if spec.metric not in str(have).split(","):
                problems.append(f"metrics must include {spec.metric} (have {have!r})")
        elif have != value:
            problems.append(f"{knob} must be {value!r} (have {have!r})")
    return problems
