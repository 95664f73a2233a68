"""Everything one evaluation run depends on (the flags of examples/evaluate_next_visit.py).

Light on imports (numpy at most), so that `--help` answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sparseehr_mcore.evaluation.endpoint import DEFAULT_K_CLS, parse_code_ranges
from sparseehr_mcore.evaluation.metrics import DEFAULT_KS

PROTOCOLS = ("A", "B")
DECODINGS = ("greedy", "sample")
VISIT_MODES = ("source", "day-bundles")


class EvaluationInputError(ValueError):
    """Bad evaluation input (checkpoint, dataset, flags): one line for the user."""


@dataclass(frozen=True, kw_only=True)
class RolloutSettings:
    """How visits are rolled out (the evaluation flags of the same names)."""

    decoding: str = "greedy"  # protocol A
    rollouts: int = 1  # protocol A's roll-outs per visit (averaged); >1 needs sampling
    samples: int = 4  # protocol B's sampled roll-outs per visit
    temperature: float = 1.0
    max_new_tokens: int = 64
    bundles: str = "visit"  # "visit" (as many bundles as the visit has) or a number
    use_cache: bool = True
    seed: int = 1234

    def quota(self, visit) -> int:
        """Bundles to generate for a `cohort.Visit`."""
        return visit.bundles if self.bundles == "visit" else int(self.bundles)




@dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    """A zero-shot next-visit evaluation (docs/evaluation.md)."""

    checkpoint: Path
    data: Path
    output: Path
    splits: tuple[str, ...] | None = None  # None: every split the dataset has
    visits: str = "source"
    protocols: tuple[str, ...] = PROTOCOLS
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    ks: tuple[int, ...] = DEFAULT_KS
    rare_threshold: int | None = None  # None: the median training count at each code level
    endpoint_name: str = "diabetes"
    endpoint_codes: str = "E08-E13"
    k_cls: tuple[int, ...] = DEFAULT_K_CLS
    bootstrap: int = 1000
    routing: bool = True
    batch_size: int = 16
    max_patients: int | None = None
    device: str = "auto"
    seed: int = 1234
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.visits not in VISIT_MODES:
            problems.append(f"--visits {self.visits!r}: choose one of {', '.join(VISIT_MODES)}")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown or not self.protocols:
            problems.append(f"--protocols {','.join(self.protocols)}: choose from A, B")
        r = self.rollout
        if r.decoding not in DECODINGS:
            problems.append(f"--decoding {r.decoding!r}: choose greedy or sample")
        if r.rollouts < 1 or r.samples < 1:
            problems.append("--rollouts and --samples must be >= 1")
        if r.decoding == "greedy" and r.rollouts > 1:
            problems.append("--rollouts > 1 needs --decoding sample (greedy roll-outs are all the same)")
        if r.temperature <= 0:
            problems.append("--temperature must be > 0")
        if r.max_new_tokens < 1:
            problems.append("--max-new-tokens must be >= 1")
        if r.bundles != "visit" and not (r.bundles.isdigit() and int(r.bundles) >= 1):
            problems.append(f"--rollout-bundles {r.bundles!r}: 'visit' or a number >= 1")
        if not self.ks or min(self.ks) < 1:
            problems.append("--ks must be positive integers")
        if not self.k_cls or min(self.k_cls) < 1:
            problems.append("--k-cls must be positive integers")
        if self.rare_threshold is not None and self.rare_threshold < 1:
            problems.append("--rare-threshold must be >= 1")
        if self.bootstrap < 0 or self.batch_size < 1:
            problems.append("--bootstrap must be >= 0 and --batch-size >= 1")
        if self.max_patients is not None and self.max_patients < 1:
            problems.append("--max-patients must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"--device {self.device!r}: choose auto, cpu or cuda")
        try:
            parse_code_ranges(self.endpoint_codes)
        except ValueError as err:
            problems.append(f"--endpoint-codes: {err}")
        if problems:
            raise EvaluationInputError("; ".join(problems))

    @property
    def endpoint_prefixes(self) -> tuple[str, ...]:
        return parse_code_ranges(self.endpoint_codes)

    def to_dict(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint), "data": str(self.data), "splits": list(self.splits or []),
            "visits": self.visits, "protocols": list(self.protocols), "rollout": vars(self.rollout).copy(),
            "ks": list(self.ks), "rare_threshold": self.rare_threshold, "endpoint_name": self.endpoint_name,
            "endpoint_codes": self.endpoint_codes, "k_cls": list(self.k_cls), "bootstrap": self.bootstrap,
            "routing": self.routing, "max_patients": self.max_patients, "seed": self.seed,
        }
