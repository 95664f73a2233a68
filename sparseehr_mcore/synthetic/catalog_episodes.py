"""Acute episodes and preventive encounters: what comes and goes between the chronic visits.

Infections follow the seasons, injuries the summer; none of them is predictable from a patient's
own history except through the declared risk factors (COPD and heart failure raise pneumonia,
osteoporosis hip fractures, atrial fibrillation strokes). Long code tails (injury sites, infection
sites) come from `Family` prefixes of the ICD-10-CM list. Rates are episodes per person-year.
"""

from __future__ import annotations

from sparseehr_mcore.synthetic.catalog_chronic import (
    CHEST_XRAY,
    CORONARY_ANGIOGRAPHY,
    CORONARY_STENT,
    ECG,
    IV_ANTIBIOTIC,
    LEFT_HEART_CATH,
)
from sparseehr_mcore.synthetic.schema import Episode, Family, Stay, dx, px

# Relative monthly intensity, January first (normalised to a mean of 1 at load).
WINTER = (3.0, 2.6, 1.8, 1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 0.8, 1.4, 2.3)
FLU_SEASON = (4.0, 3.5, 1.5, 0.4, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 1.0, 2.5)
SPRING = (0.6, 0.7, 1.4, 2.0, 2.0, 1.2, 0.8, 0.7, 1.0, 0.8, 0.5, 0.5)
SUMMER = (0.6, 0.6, 0.8, 1.0, 1.2, 1.4, 1.5, 1.4, 1.1, 0.9, 0.7, 0.6)
TICK_SEASON = (0.05, 0.05, 0.1, 0.4, 1.5, 3.0, 3.0, 2.0, 0.8, 0.4, 0.1, 0.05)
VACCINE_SEASON = (0.8, 0.3, 0.1, 0.05, 0.0, 0.0, 0.0, 0.3, 2.5, 4.0, 2.5, 1.5)

# Falls and other external causes, coded beside an injury on part of the claims.
EXTERNAL_CAUSE = dx({"W19XXXA": 0.5, "W010XXA": 0.2, "W1830XA": 0.1, "W108XXA": 0.1, "W5501XA": 0.1}, per_visit=0.3)
CT_HEAD = "B020ZZZ"
CT_CHEST_ABDOMEN = "BW24ZZZ"

EPISODES: tuple[Episode, ...] = (
    # --- respiratory infections
    Episode(
        key="upper_respiratory", label="upper respiratory infection", rate=(1.0, 0.4, 0.35, 0.3, 0.3), season=WINTER,
        diagnoses=(dx({"J069": 0.5, "J00": 0.2, "J029": 0.15, "J209": 0.1, "J40": 0.05}),
                   dx({"R059": 0.5, "R509": 0.3, "R0981": 0.2}, per_visit=0.3)),
    ),
    Episode(
        key="influenza", label="influenza", rate=(0.08, 0.04, 0.04, 0.05, 0.06), season=FLU_SEASON,
        diagnoses=(dx({"J101": 0.4, "J111": 0.4, "J1100": 0.1, "J1189": 0.1}),), inpatient=0.03,
        stay=Stay(diagnoses=(dx({"J1100": 0.6, "J1008": 0.4}),), procedures=(px(CHEST_XRAY, 0.8),), nights=(2, 5)),
    ),
    Episode(
        key="strep_throat", label="streptococcal pharyngitis", rate=(0.15, 0.05, 0.03, 0.01, 0.01), season=WINTER,
        diagnoses=(dx("J020"),),
    ),
    Episode(
        key="sinusitis", label="sinusitis", rate=(0.05, 0.10, 0.10, 0.08, 0.05), season=WINTER,
        diagnoses=(dx({"J0190": 0.4, "J329": 0.1}, families=(Family("J01", 0.3), Family("J32", 0.2))),),
    ),
    Episode(
        key="otitis_media", label="otitis media", rate=(0.5, 0.05, 0.03, 0.02, 0.02), season=WINTER,
        diagnoses=(dx({"H6690": 0.4, "H6691": 0.1, "H6692": 0.1, "H6693": 0.1},
                      families=(Family("H6600", 0.15), Family("H6500", 0.15))),),
    ),
    Episode(
        key="bronchiolitis", label="bronchiolitis", rate=(0.06, 0.0, 0.0, 0.0, 0.0), season=WINTER,
        diagnoses=(dx({"J219": 0.7, "J210": 0.3}),), inpatient=0.05,
        stay=Stay(diagnoses=(dx({"J210": 0.6, "J219": 0.4}),), procedures=(px("5A0935A", 0.5),), nights=(1, 4)),
    ),
    Episode(
        key="pneumonia", label="pneumonia", rate=(0.03, 0.01, 0.015, 0.04, 0.08), season=WINTER,
        risk_factors=(("copd", 3.0), ("hypertensive_heart_failure", 2.0), ("ischaemic_heart_failure", 2.0),
                      ("dementia", 2.0), ("tobacco", 1.5)),
        diagnoses=(dx({"J189": 0.6, "J181": 0.1, "J159": 0.1, "J13": 0.1, "J129": 0.1}),),
        procedures=(px(CHEST_XRAY, 0.6),), inpatient=0.4,
        stay=Stay(diagnoses=(dx({"J189": 0.6, "J181": 0.1, "J159": 0.15, "J13": 0.15}), dx("A419", per_visit=0.1)),
                  procedures=(px(CHEST_XRAY, 0.8), px(IV_ANTIBIOTIC, 0.8), px("5A1945Z", 0.05)), nights=(2, 8)),
    ),
    # --- digestive
    Episode(
        key="gastroenteritis", label="gastroenteritis", rate=(0.2, 0.08, 0.05, 0.05, 0.06), season=WINTER,
        diagnoses=(dx({"A084": 0.3, "A09": 0.4, "K529": 0.3}), dx({"R112": 0.6, "R197": 0.4}, per_visit=0.3)),
        inpatient=0.01, stay=Stay(diagnoses=(dx({"A084": 0.5, "E860": 0.5}),), nights=(1, 3)),
    ),
    Episode(
        key="abdominal_pain", label="abdominal pain", rate=(0.1, 0.1, 0.08, 0.08, 0.1), female_rr=1.4,
        diagnoses=(dx({"R109": 0.3}, families=(Family("R1010", 0.1), Family("R103", 0.3), Family("R1081", 0.3))),),
        procedures=(px("BW21ZZZ", 0.1),),
    ),
    Episode(
        key="constipation", label="constipation", rate=(0.08, 0.03, 0.03, 0.05, 0.08),
        diagnoses=(dx({"K5900": 0.7, "K5909": 0.3}),),
    ),
    Episode(
        key="appendicitis", label="appendicitis", rate=(0.0012, 0.0012, 0.0008, 0.0005, 0.0004),
        diagnoses=(dx({"K3580": 0.4, "K35890": 0.2}, families=(Family("K352", 0.2), Family("K353", 0.2))),),
        inpatient=0.95,
        stay=Stay(diagnoses=(dx({"K3580": 0.4, "K35890": 0.2, "K35209": 0.2, "K3530": 0.2}),),
                  procedures=(px("0DTJ4ZZ", 0.9), px("BW21ZZZ", 0.5)), nights=(1, 3)),
    ),
    Episode(
        key="gallstones", label="gallstone disease", rate=(0.0005, 0.003, 0.004, 0.005, 0.005), female_rr=2.0,
        risk_factors=(("obesity", 2.0),), diagnoses=(dx({"K8020": 0.5, "K8010": 0.2, "K8000": 0.2, "K8012": 0.1}),),
        procedures=(px("BF43ZZZ", 0.6),), inpatient=0.6,
        stay=Stay(diagnoses=(dx({"K8000": 0.5, "K8010": 0.3, "K8012": 0.2}),),
                  procedures=(px("0FT44ZZ", 0.85), px("BF43ZZZ", 0.5)), nights=(1, 3)),
    ),
    Episode(
        key="diverticulitis", label="diverticulitis", rate=(0.0, 0.001, 0.004, 0.008, 0.01),
        diagnoses=(dx({"K5732": 0.7, "K5730": 0.3}),), procedures=(px("BW21ZZZ", 0.5),), inpatient=0.3,
        stay=Stay(diagnoses=(dx({"K5732": 0.6, "K5720": 0.4}),),
                  procedures=(px("BW21ZZZ", 0.8), px(IV_ANTIBIOTIC, 0.8)), nights=(2, 5)),
    ),
    Episode(
        key="gi_bleed", label="gastrointestinal haemorrhage", rate=(0.0, 0.001, 0.003, 0.008, 0.012),
        risk_factors=(("atrial_fibrillation", 1.5), ("alcohol", 2.0)),
        diagnoses=(dx({"K922": 0.6, "K921": 0.2, "K625": 0.2}),), inpatient=0.6,
        stay=Stay(diagnoses=(dx({"K922": 0.4, "K254": 0.3, "K5731": 0.3}), dx("D62", per_visit=0.5)),
                  procedures=(px("0DJ08ZZ", 0.7), px("30233N1", 0.4)), nights=(2, 5)),
    ),
    # --- urinary
    Episode(
        key="urinary_infection", label="urinary tract infection", rate=(0.04, 0.08, 0.06, 0.09, 0.14),
        female_rr=1.6, male_rr=0.3,
        risk_factors=(("dementia", 2.0), ("type2_diabetes", 1.3), ("prostate_hyperplasia", 2.0)),
        diagnoses=(dx({"N390": 0.75, "N3000": 0.25}), dx({"R300": 0.5, "R350": 0.5}, per_visit=0.2)), inpatient=0.03,
        stay=Stay(diagnoses=(dx({"N390": 0.6, "N10": 0.4}),), procedures=(px(IV_ANTIBIOTIC, 0.8),), nights=(2, 5)),
    ),
    Episode(
        key="kidney_stone", label="kidney stone", rate=(0.0, 0.005, 0.007, 0.006, 0.004), male_rr=1.5,
        diagnoses=(dx({"N200": 0.5, "N201": 0.3, "N209": 0.2}),), procedures=(px("BT43ZZZ", 0.5), px("BW21ZZZ", 0.3)),
        inpatient=0.1, stay=Stay(diagnoses=(dx({"N201": 0.6, "N132": 0.4}),), nights=(1, 3)),
    ),
    # --- skin
    Episode(
        key="cellulitis", label="cellulitis or abscess", rate=(0.03, 0.03, 0.03, 0.04, 0.05),
        risk_factors=(("type2_diabetes", 1.5), ("obesity", 1.3)),
        diagnoses=(dx({}, families=(Family("L0311", 0.5), Family("L0301", 0.1), Family("L0321", 0.1),
                                    Family("L024", 0.2), Family("L022", 0.1))),),
        inpatient=0.1,
        stay=Stay(diagnoses=(dx({"L03115": 0.5, "L03116": 0.5}),), procedures=(px(IV_ANTIBIOTIC, 0.9),), nights=(2, 5)),
    ),
    Episode(
        key="dermatitis", label="dermatitis", rate=(0.1, 0.05, 0.05, 0.05, 0.05), season=SPRING,
        diagnoses=(dx({"L309": 0.4, "L209": 0.1}, families=(Family("L23", 0.3), Family("L25", 0.2))),),
    ),
    Episode(
        key="skin_lesion", label="skin lesion", rate=(0.01, 0.05, 0.08, 0.12, 0.12),
        diagnoses=(dx({"L821": 0.3, "L570": 0.3}, families=(Family("D22", 0.25), Family("D23", 0.15))),),
        procedures=(px("0HB6XZX", 0.1), px("0HB1XZX", 0.1)),
    ),
    Episode(key="warts", label="viral warts", rate=(0.05, 0.03, 0.015, 0.01, 0.005),
            diagnoses=(dx({"B079": 0.8, "B070": 0.2}),)),
    Episode(
        key="herpes_zoster", label="herpes zoster", rate=(0.0005, 0.002, 0.005, 0.01, 0.012),
        diagnoses=(dx({"B029": 0.8, "B0229": 0.1, "B0230": 0.1}),),
    ),
    # --- injuries (subsequent-encounter codes at aftercare visits)
    Episode(
        key="sprain", label="sprain or strain", rate=(0.05, 0.05, 0.03, 0.02, 0.02), season=SUMMER,
        diagnoses=(dx({"S39012A": 0.15, "S134XXA": 0.15}, families=(Family("S934", 0.4, "A"), Family("S835", 0.15, "A"),
                                                                 Family("S635", 0.15, "A"))), EXTERNAL_CAUSE),
        procedures=(px("BQ0GZZZ", 0.2),), aftercare_visits=1,
    ),
    Episode(
        key="laceration", label="open wound", rate=(0.04, 0.03, 0.02, 0.015, 0.015), male_rr=1.5, season=SUMMER,
        diagnoses=(dx({}, families=(Family("S614", 0.3, "A"), Family("S612", 0.2, "A"), Family("S018", 0.2, "A"),
                                    Family("S810", 0.15, "A"), Family("S510", 0.15, "A"))), EXTERNAL_CAUSE),
        procedures=(px("0HQFXZZ", 0.3), px("0HQGXZZ", 0.3), px("0HQ1XZZ", 0.2)),
    ),
    Episode(
        key="contusion", label="contusion", rate=(0.04, 0.02, 0.015, 0.02, 0.03),
        diagnoses=(dx({}, families=(Family("S800", 0.3, "A"), Family("S400", 0.2, "A"), Family("S008", 0.2, "A"),
                                    Family("S202", 0.15, "A"), Family("S700", 0.15, "A"))), EXTERNAL_CAUSE),
    ),
    Episode(
        key="limb_fracture", label="fracture of a limb", rate=(0.025, 0.015, 0.012, 0.015, 0.025), season=SUMMER,
        risk_factors=(("osteoporosis", 2.5),),
        diagnoses=(dx({}, families=(Family("S525", 0.3, "A"), Family("S526", 0.1, "A"), Family("S626", 0.2, "A"),
                                    Family("S822", 0.1, "A"), Family("S826", 0.1, "A"), Family("S422", 0.1, "A"),
                                    Family("S923", 0.1, "A"))), EXTERNAL_CAUSE),
        procedures=(px("2W3CX2Z", 0.3), px("2W3DX2Z", 0.3), px("2W3QX2Z", 0.1)), inpatient=0.08,
        stay=Stay(diagnoses=(dx({}, families=(Family("S8225", 0.5, "A"), Family("S5255", 0.5, "A"))),),
                  procedures=(px("0QSG04Z", 0.5), px("0PSJ04Z", 0.5)), nights=(1, 3)),
        aftercare_visits=2,
    ),
    Episode(
        key="hip_fracture", label="hip fracture", rate=(0.0, 0.0002, 0.001, 0.004, 0.015), female_rr=1.6,
        risk_factors=(("osteoporosis", 3.0), ("dementia", 2.0), ("parkinsons", 2.0)),
        diagnoses=(dx({}, families=(Family("S7200", 0.5, "A"), Family("S7210", 0.3, "A"), Family("S7214", 0.2, "A"))),
                   EXTERNAL_CAUSE),
        inpatient=0.95,
        stay=Stay(diagnoses=(dx({}, families=(Family("S7200", 0.5, "A"), Family("S7214", 0.5, "A"))), EXTERNAL_CAUSE),
                  procedures=(px("0QS634Z", 0.3), px("0QS734Z", 0.3), px("0SR9019", 0.2), px("0SRB019", 0.2)),
                  nights=(3, 8)),
        aftercare_visits=2,
    ),
    Episode(
        key="head_injury", label="head injury", rate=(0.02, 0.008, 0.005, 0.008, 0.015),
        diagnoses=(dx({"S060X0A": 0.3, "S0990XA": 0.3, "S060X1A": 0.1, "S0003XA": 0.3}), EXTERNAL_CAUSE),
        procedures=(px(CT_HEAD, 0.4),),
    ),
    Episode(
        key="burn", label="burn", rate=(0.01, 0.005, 0.004, 0.003, 0.003),
        diagnoses=(dx({}, families=(Family("T2312", 0.5, "A"), Family("T2212", 0.3, "A"), Family("T2410", 0.2, "A"))),),
    ),
    # --- musculoskeletal and general symptoms
    Episode(
        key="joint_pain", label="joint pain", rate=(0.02, 0.06, 0.1, 0.1, 0.1),
        diagnoses=(dx({}, families=(Family("M2556", 0.4), Family("M2551", 0.3), Family("M2557", 0.3))),),
    ),
    Episode(
        key="acute_back_pain", label="acute back or neck pain", rate=(0.01, 0.08, 0.1, 0.08, 0.06),
        diagnoses=(dx({"M5450": 0.5, "M546": 0.2, "M542": 0.3}),), procedures=(px("F07L6ZZ", 0.1),),
    ),
    Episode(
        key="tendinopathy", label="tendinitis or bursitis", rate=(0.005, 0.02, 0.03, 0.025, 0.015),
        diagnoses=(dx({}, families=(Family("M7551", 0.3), Family("M7710", 0.2), Family("M7661", 0.2),
                                    Family("M7060", 0.3))),),
        procedures=(px("3E0U3GC", 0.2),),
    ),
    Episode(
        key="symptoms", label="unexplained symptoms", rate=(0.15, 0.15, 0.15, 0.2, 0.25),
        diagnoses=(dx({"R5383": 0.15, "R059": 0.1, "R0602": 0.1, "R509": 0.08, "R112": 0.07, "R21": 0.07, "R600": 0.07,
                       "R634": 0.04, "R42": 0.08, "R002": 0.06, "R519": 0.1, "R197": 0.08}),),
    ),
    Episode(
        key="chest_pain", label="chest pain", rate=(0.005, 0.03, 0.05, 0.06, 0.06),
        risk_factors=(("coronary_disease", 2.0),),
        diagnoses=(dx({"R0789": 0.5, "R079": 0.3, "R0782": 0.1, "R072": 0.1}),),
        procedures=(px(ECG, 0.8), px(CHEST_XRAY, 0.3)), inpatient=0.05,
        stay=Stay(diagnoses=(dx({"R0789": 0.6, "I209": 0.4}),), procedures=(px(ECG, 0.9), px("B246ZZZ", 0.3)),
                  nights=(1, 2)),
    ),
    Episode(
        key="syncope", label="syncope or dizziness", rate=(0.01, 0.02, 0.03, 0.05, 0.08),
        diagnoses=(dx({"R55": 0.5, "R42": 0.5}),), procedures=(px(ECG, 0.5), px(CT_HEAD, 0.1)),
    ),
    # --- eyes, ears, nose
    Episode(
        key="conjunctivitis", label="conjunctivitis", rate=(0.08, 0.03, 0.02, 0.02, 0.02), season=SPRING,
        diagnoses=(dx({"B309": 0.3, "H1030": 0.2}, families=(Family("H1031", 0.2), Family("H1013", 0.3))),),
    ),
    Episode(
        key="earwax", label="impacted cerumen", rate=(0.02, 0.02, 0.03, 0.05, 0.08),
        diagnoses=(dx({"H6123": 0.5, "H6121": 0.25, "H6122": 0.25}),),
    ),
    Episode(
        key="otitis_externa", label="otitis externa", rate=(0.03, 0.02, 0.01, 0.01, 0.01), season=SUMMER,
        diagnoses=(dx({"H6090": 0.3}, families=(Family("H6033", 0.4), Family("H6039", 0.3))),),
    ),
    Episode(key="nosebleed", label="epistaxis", rate=(0.01, 0.005, 0.005, 0.01, 0.015), diagnoses=(dx("R040"),)),
    # --- other infections
    Episode(
        key="lyme_disease", label="Lyme disease", rate=(0.002, 0.0015, 0.0015, 0.0015, 0.001), season=TICK_SEASON,
        region_rr=(("NE", 8.0), ("MW", 3.0), ("S", 0.3), ("W", 0.2)), diagnoses=(dx("A6920"),),
    ),
    Episode(
        key="vaginal_candidiasis", label="vulvovaginal candidiasis", rate=(0.005, 0.05, 0.03, 0.01, 0.005),
        male_rr=0.0, diagnoses=(dx("B3731"),),
    ),
    Episode(
        key="hand_foot_mouth", label="hand, foot and mouth disease", rate=(0.02, 0.0, 0.0, 0.0, 0.0), season=SUMMER,
        diagnoses=(dx("B084"),),
    ),
    Episode(
        key="sepsis", label="sepsis", rate=(0.001, 0.001, 0.002, 0.006, 0.015), inpatient=1.0,
        risk_factors=(("type2_diabetes", 1.5), ("copd", 1.5), ("end_stage_renal", 3.0), ("dementia", 2.0)),
        diagnoses=(dx("A419"),),
        stay=Stay(diagnoses=(dx({"A419": 0.8, "A4151": 0.2}), dx("R6520", per_visit=0.3)),
                  procedures=(px(IV_ANTIBIOTIC, 0.9), px("02HV33Z", 0.3), px("5A1945Z", 0.1)), nights=(3, 10)),
    ),
    # --- acute cardiovascular events (they leave a chronic trace)
    Episode(
        key="myocardial_infarction", label="acute myocardial infarction", rate=(0.0, 0.0001, 0.0008, 0.002, 0.004),
        male_rr=1.8, risk_factors=(("coronary_disease", 4.0), ("type2_diabetes", 1.5), ("tobacco", 2.0)),
        diagnoses=(dx({"I214": 0.6, "I2119": 0.15, "I2109": 0.15, "I2129": 0.1}),), inpatient=1.0,
        stay=Stay(diagnoses=(dx({"I214": 0.6, "I2119": 0.15, "I2109": 0.15, "I2129": 0.1}),),
                  procedures=(px(CORONARY_ANGIOGRAPHY, 0.9), px(LEFT_HEART_CATH, 0.7), px(CORONARY_STENT, 0.6)),
                  nights=(2, 6)),
        leads_to=("old_myocardial_infarction",),
    ),
    Episode(
        key="stroke", label="cerebral infarction", rate=(0.0, 0.0001, 0.0006, 0.0025, 0.006),
        risk_factors=(("hypertension", 2.0), ("atrial_fibrillation", 4.0), ("type2_diabetes", 1.5), ("tobacco", 1.8)),
        diagnoses=(dx({"I639": 0.5}, families=(Family("I6351", 0.3), Family("I6341", 0.2))),), inpatient=1.0,
        stay=Stay(diagnoses=(dx({"I639": 0.5}, families=(Family("I6351", 0.3), Family("I6341", 0.2))),
                             dx({"R4701": 0.5, "R29810": 0.5}, per_visit=0.4)),
                  procedures=(px(CT_HEAD, 0.9), px("B030ZZZ", 0.5)), nights=(3, 8)),
        leads_to=("stroke_sequelae",),
    ),
    Episode(
        key="transient_ischaemic_attack", label="transient ischaemic attack", rate=(0.0, 0.0002, 0.001, 0.004, 0.008),
        risk_factors=(("hypertension", 2.0), ("atrial_fibrillation", 3.0)), diagnoses=(dx("G459"),),
        procedures=(px(CT_HEAD, 0.7),), inpatient=0.5,
        stay=Stay(diagnoses=(dx("G459"),), procedures=(px(CT_HEAD, 0.9),), nights=(1, 2)),
    ),
    Episode(
        key="venous_thrombosis", label="deep vein thrombosis or pulmonary embolism",
        rate=(0.0002, 0.001, 0.002, 0.004, 0.006),
        risk_factors=(("obesity", 1.5), ("breast_cancer", 3.0), ("lung_cancer", 3.0), ("colorectal_cancer", 3.0)),
        diagnoses=(dx({"I82401": 0.2, "I82402": 0.2, "I82409": 0.2, "I2699": 0.4}),),
        procedures=(px("B54DZZZ", 0.7),), inpatient=0.4,
        stay=Stay(diagnoses=(dx({"I2699": 0.7, "I2609": 0.3}),), procedures=(px(CT_CHEST_ABDOMEN, 0.5),),
                  nights=(2, 5)),
    ),
    # --- mind
    Episode(
        key="adjustment", label="adjustment or acute stress reaction", rate=(0.01, 0.03, 0.02, 0.01, 0.005),
        female_rr=1.4, diagnoses=(dx({"F4320": 0.3, "F4321": 0.3, "F4323": 0.2, "F430": 0.2}),),
        procedures=(px("GZ56ZZZ", 0.3),),
    ),
    Episode(
        key="insomnia", label="insomnia", rate=(0.005, 0.03, 0.04, 0.04, 0.04), female_rr=1.3,
        diagnoses=(dx({"G4700": 0.6, "F5101": 0.4}),),
    ),
    # --- pregnancy (the stay is the delivery)
    Episode(
        key="vaginal_delivery", label="vaginal delivery", rate=(0.001, 0.035, 0.002, 0.0, 0.0), male_rr=0.0,
        diagnoses=(dx("O80"),), inpatient=1.0,
        stay=Stay(diagnoses=(dx("O80"), dx("Z370")),
                  procedures=(px("10E0XZZ", 0.95),), nights=(1, 2)),
    ),
    Episode(
        key="caesarean_delivery", label="caesarean delivery", rate=(0.0, 0.015, 0.001, 0.0, 0.0), male_rr=0.0,
        diagnoses=(dx("O82"),), inpatient=1.0,
        stay=Stay(diagnoses=(dx("O82"), dx("Z370"), dx({"O34211": 0.5, "O321XX0": 0.25, "O480": 0.25}, per_visit=0.6)),
                  procedures=(px("10D00Z1", 0.95),), nights=(2, 4)),
    ),
    # --- preventive care
    Episode(
        key="adult_wellness", label="adult preventive examination", rate=(0.0, 0.35, 0.5, 0.6, 0.55),
        diagnoses=(dx({"Z0000": 0.7, "Z0001": 0.3}), dx({"Z13220": 0.4, "Z131": 0.4, "Z136": 0.2}, per_visit=0.3)),
    ),
    Episode(
        key="child_wellness", label="well-child examination", rate=(0.9, 0.0, 0.0, 0.0, 0.0),
        diagnoses=(dx({"Z00129": 0.8, "Z00121": 0.2}), dx("Z23", per_visit=0.5)), procedures=(px("3E0234Z", 0.5),),
    ),
    Episode(
        key="flu_vaccine", label="influenza vaccination", rate=(0.4, 0.25, 0.35, 0.6, 0.65), season=VACCINE_SEASON,
        diagnoses=(dx("Z23"),), procedures=(px("3E0234Z", 1.0),),
    ),
    Episode(
        key="screening_mammogram", label="screening mammography", rate=(0.0, 0.02, 0.5, 0.45, 0.2), male_rr=0.0,
        diagnoses=(dx("Z1231"),), procedures=(px("BH02ZZZ", 0.95),),
    ),
    Episode(
        key="cervical_screening", label="gynaecological examination", rate=(0.01, 0.3, 0.25, 0.05, 0.0), male_rr=0.0,
        diagnoses=(dx({"Z01419": 0.6, "Z124": 0.4}),),
    ),
    Episode(
        key="contraception", label="contraceptive management", rate=(0.02, 0.2, 0.03, 0.0, 0.0), male_rr=0.0,
        diagnoses=(dx({"Z3041": 0.6, "Z30011": 0.2, "Z30430": 0.2}),),
    ),
    Episode(
        key="screening_colonoscopy", label="screening colonoscopy", rate=(0.0, 0.005, 0.08, 0.08, 0.01),
        diagnoses=(dx("Z1211"), dx("K635", per_visit=0.3), dx("D126", per_visit=0.15)),
        procedures=(px("0DJD8ZZ", 0.95), px("0DBN8ZX", 0.3)),
    ),
    Episode(
        key="eye_examination", label="eye examination", rate=(0.2, 0.1, 0.15, 0.25, 0.25),
        diagnoses=(dx({"Z0100": 0.8, "Z0101": 0.2}), dx({"H5213": 0.4, "H524": 0.4, "H5203": 0.2}, per_visit=0.5)),
    ),
)

# The one visit of a patient whom nothing else brought in during enrolment: (oldest age, episode).
ENROLMENT_EPISODES = ((17, "child_wellness"), (200, "adult_wellness"))
