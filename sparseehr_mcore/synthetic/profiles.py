"""The two data holders a cohort can come from: an insurer's claims and a hospital's records.

The same clinical model, seen differently. Claims cover a broad insured population in the ICD-10
era (from 2016) with mostly outpatient care. The hospital sees older, sicker patients of its own
region, admits them about three times as often, and its records are from the ICD-9 era (to 2014),
coded in ICD-9-CM: the zero-shot transfer target of a model pretrained on claims.
"""

from __future__ import annotations

from sparseehr_mcore.synthetic.schema import PopulationProfile

CLAIMS = PopulationProfile(
    name="claims",
    coding="icd10",
    id_prefix="C",
    age_weights=(0.20, 0.28, 0.33, 0.13, 0.06),
    female_share=0.51,
    region_weights=(("NE", 0.17), ("MW", 0.21), ("S", 0.38), ("W", 0.24)),
    start_year=2016,
    years=8,
    follow_up_years=(2.0, 8.0),
)

HOSPITAL = PopulationProfile(
    name="hospital",
    coding="icd9",
    id_prefix="H",
    age_weights=(0.08, 0.17, 0.33, 0.27, 0.15),
    female_share=0.52,
    region_weights=(("NE", 0.85), ("MW", 0.07), ("S", 0.05), ("W", 0.03)),
    start_year=2008,
    years=7,
    follow_up_years=(1.0, 7.0),
    outpatient_scale=0.6,
    episode_scale=0.8,
    admission_scale=3.0,
    comorbidity_coding=0.45,
)

PROFILES = {profile.name: profile for profile in (CLAIMS, HOSPITAL)}
