"""How a model's roll-outs become one score per diagnosis candidate (docs/evaluation.md).

* Protocol A (the paper's): roll the visit out (greedy, or `rollouts` sampled roll-outs); a code's
  score is its highest probability at any step, averaged over roll-outs. "Could the model have
  written this code anywhere in the visit?"
* Protocol B (expected count): a code's score is the expected number of times it appears in the
  rolled-out visit, estimated without the variance of counting samples: along each sampled
  roll-out, the sum over steps of the code's probability at that step (by the tower rule its
  expectation is the expected count; codes appear at most once per bundle, so for a one-bundle
  visit it is the probability that the code is in the visit). Averaged over `samples` roll-outs.
  Its per-step probabilities come from a teacher-forced forward of the checkpoint's own engine
  over the sampled tokens: Megatron-Core for a Megatron-Core checkpoint, the HF model otherwise.

Both read the grammar-renormalised next-token distribution (`rollout.step_probabilities`).
Category scores aggregate the per-step probabilities per ICD-10 category before the maximum (A)
or sum (B): the probability that the next token is any code of the category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparseehr_mcore.evaluation.codes import CodeSpace
from sparseehr_mcore.evaluation.cohort import Visit
from sparseehr_mcore.evaluation.config import RolloutSettings
from sparseehr_mcore.evaluation.models import ScoredModel, megatron_logits
from sparseehr_mcore.evaluation.rollout import GrammarIds, roll_out, step_probabilities


@dataclass
class Scores:
    """Scores of a batch of visits: [visits, candidates] and [visits, categories]."""

    tokens: np.ndarray
    categories: np.ndarray


@dataclass
class RolloutStats:
    """What the roll-outs did, for the report."""

    rollouts: int = 0
    steps: int = 0
    hit_cap: int = 0
    ended_record: int = 0
    max_abs_engine_difference: float | None = None  # Megatron-Core vs HF probabilities (protocol B, mcore only)


class ModelScorer:
    """Protocol A or B over batches of visits for one model."""

    def __init__(self, *, model: ScoredModel, codes: CodeSpace, grammar: GrammarIds, settings: RolloutSettings,
                 protocol: str) -> None:
        if protocol not in ("A", "B"):
            raise ValueError(f"protocol {protocol!r}")
        self.model, self.codes, self.grammar, self.settings, self.protocol = model, codes, grammar, settings, protocol
        self.category_matrix = codes.category_matrix()
        self.stats = RolloutStats()

    def __call__(self, visits: list[Visit]) -> Scores:
        settings = self.settings
        repeats = settings.rollouts if self.protocol == "A" else settings.samples
        sampled = self.protocol == "B" or settings.decoding == "sample"
        temperature = settings.temperature if sampled else 1.0
        # Every roll-out of every visit in one batched generate: row r is visit r % n, roll-out r // n.
        rows = [v for _ in range(repeats) for v in visits]
        seeds = None
        if sampled:
            tag = 1 if self.protocol == "A" else 2
            seeds = [(settings.seed, tag, v.patient, v.number, r) for r in range(repeats) for v in visits]
        outs = roll_out(
            self.model.hf_model, [v.context for v in rows], quotas=[settings.quota(v) for v in rows],
            grammar=self.grammar, max_new_tokens=settings.max_new_tokens, seeds=seeds, temperature=temperature,
            use_cache=settings.use_cache, device=self.model.device,
        )
        logits = [out.logits for out in outs]
        if self.protocol == "B" and self.model.megatron_model is not None:
            logits = self._megatron_logits(rows, outs)
        tokens = np.zeros((len(visits), self.codes.num_candidates))
        categories = np.zeros((len(visits), len(self.codes.categories)))
        for row, (visit, out, step_logits) in enumerate(zip(rows, outs, logits)):
            probs = step_probabilities(out.tokens, step_logits, grammar=self.grammar, columns=self.codes.dx_ids,
                                       temperature=temperature)
            by_category = probs @ self.category_matrix
            if self.protocol == "A":
                tokens[row % len(visits)] += probs.max(axis=0, initial=0.0)
                categories[row % len(visits)] += by_category.max(axis=0, initial=0.0)
            else:
                tokens[row % len(visits)] += probs.sum(axis=0)
                categories[row % len(visits)] += by_category.sum(axis=0)
            self._count(out.tokens, visit)
        return Scores(tokens=tokens / repeats, categories=categories / repeats)

    def _megatron_logits(self, visits: list[Visit], outs) -> list[np.ndarray]:
        """The checkpoint's own Megatron-Core logits at every roll-out step (one teacher-forced
        forward over context + generated tokens but the last)."""
        sequences = [np.concatenate([v.context, out.tokens[:-1]]) for v, out in zip(visits, outs)]
        full = megatron_logits(self.model.megatron_model, sequences, device=self.model.device)
        logits = [f[len(v.context) - 1:] for f, v in zip(full, visits)]
        for mine, out in zip(logits, outs):
            difference = np.abs(_softmax(mine) - _softmax(out.logits)).max() if len(out.tokens) else 0.0
            self.stats.max_abs_engine_difference = max(self.stats.max_abs_engine_difference or 0.0, float(difference))
        return logits

    def _count(self, generated: np.ndarray, visit: Visit) -> None:
        self.stats.rollouts += 1
        self.stats.steps += len(generated)
        if len(generated) and generated[-1] == self.grammar.eod:
            self.stats.ended_record += 1
        elif len(generated) == self.settings.max_new_tokens and (generated == self.grammar.end).sum() < self.settings.quota(visit):
            self.stats.hit_cap += 1


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)
