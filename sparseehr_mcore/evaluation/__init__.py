"""Zero-shot next-visit evaluation: Recall@K by roll-out (protocols A and B) against baselines, with
breakdowns, a binary endpoint and a routing analysis (docs/evaluation.md)."""
