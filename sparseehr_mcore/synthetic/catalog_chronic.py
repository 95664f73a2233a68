"""The chronic conditions and their progressions: the learnable backbone of the synthetic cohort.

Rates are rounded from US adult figures (NHANES, CDC chronic-disease surveillance, Medicare chronic
condition prevalence) to keep ages, sexes and comorbidity in plausible proportion; they are not
estimates of anything. Codes are dotless ICD-10-CM / ICD-10-PCS, each checked against the package
lists at load time (model.py). Risk factors name conditions declared above them.

Conditions that arise only by progression (all-zero prevalence, no incidence) are the complications
that a model can learn to predict from earlier visits: uncomplicated type 2 diabetes (E11.9) leads
to diabetic kidney disease (E11.22 with an N18 stage), hypertension (I10) to hypertensive heart
disease with heart failure (I11.0 with an I50 type) or hypertensive CKD (I12.9), CKD stage 3 to
stage 4 to end-stage disease on dialysis.
"""

from __future__ import annotations

from sparseehr_mcore.synthetic.schema import Condition, Family, Progression, Stay, dx, px

ECG = "4A02X4Z"  # Measurement of Cardiac Electrical Activity, External Approach
ECHO = "B246ZZZ"  # Ultrasonography of Right and Left Heart
SPIROMETRY = "4A09X5Z"  # Measurement of Respiratory Flow, External Approach
CHEST_XRAY = "BW03ZZZ"  # Plain Radiography of Chest
PSYCHOTHERAPY_CBT = "GZ58ZZZ"
MEDICATION_MANAGEMENT = "GZ3ZZZZ"
IV_ANTIBIOTIC = "3E03329"  # Introduction of Other Anti-infective into Peripheral Vein, Percutaneous
CHEMOTHERAPY = "3E03305"  # Introduction of Other Antineoplastic into Peripheral Vein, Percutaneous
HEMODIALYSIS = "5A1D70Z"  # Performance of Urinary Filtration, Intermittent, < 6 Hours Per Day
CORONARY_ANGIOGRAPHY = "B2111ZZ"  # Fluoroscopy of Multiple Coronary Arteries, Low Osmolar Contrast
LEFT_HEART_CATH = "4A023N7"  # Measurement of Cardiac Sampling and Pressure, Left Heart, Percutaneous
CORONARY_STENT = "027034Z"  # Dilation of Coronary Artery, One Artery, Drug-eluting Device, Percutaneous

CONDITIONS: tuple[Condition, ...] = (
    # --- risk factors first: the conditions below name them
    Condition(
        key="obesity", label="obesity",
        prevalence=(0.06, 0.14, 0.20, 0.17, 0.08), incidence=0.03,
        region_rr=(("S", 1.15), ("MW", 1.1), ("W", 0.85)),
        diagnoses=(
            dx({"E669": 0.6, "E6601": 0.25, "E6609": 0.1, "E668": 0.05}, per_visit=0.7),
            dx({}, families=(Family("Z683", 1.0), Family("Z684", 0.6)), per_visit=0.4, fixed=True),
        ),
        visits_per_year=0.5,
    ),
    Condition(
        key="tobacco", label="nicotine dependence",
        prevalence=(0.01, 0.15, 0.15, 0.09, 0.04), incidence=0.01, male_rr=1.3,
        region_rr=(("S", 1.15), ("W", 0.8)),
        diagnoses=(dx({"F17210": 0.75, "F17200": 0.2, "F17290": 0.05}, per_visit=0.6),),
        visits_per_year=0.3,
    ),
    Condition(
        key="alcohol", label="alcohol use disorder",
        prevalence=(0.002, 0.04, 0.04, 0.025, 0.01), male_rr=2.0,
        diagnoses=(dx({"F1010": 0.6, "F1020": 0.35, "F1021": 0.05}, per_visit=0.7),),
        visits_per_year=0.8, admissions_per_year=0.05,
        stay=Stay(diagnoses=(dx({"F10239": 0.7, "F10231": 0.3}),), procedures=(px("HZ2ZZZZ", 0.8),), nights=(2, 5)),
    ),
    Condition(
        key="prediabetes", label="prediabetes",
        prevalence=(0.005, 0.05, 0.12, 0.15, 0.10), incidence=0.02, risk_factors=(("obesity", 2.0),),
        diagnoses=(dx({"R7309": 0.5, "R7301": 0.35, "R7302": 0.15}, per_visit=0.6),), visits_per_year=0.5,
    ),
    Condition(
        key="hyperlipidaemia", label="hyperlipidaemia",
        prevalence=(0.005, 0.05, 0.25, 0.42, 0.38), incidence=0.04, risk_factors=(("obesity", 1.5),),
        diagnoses=(dx({"E785": 0.55, "E7800": 0.2, "E782": 0.15, "E781": 0.1}, per_visit=0.8),),
        visits_per_year=1.0,
    ),
    Condition(
        key="hypertension", label="essential hypertension",
        prevalence=(0.003, 0.07, 0.30, 0.58, 0.68), incidence=0.04,
        risk_factors=(("obesity", 1.6), ("alcohol", 1.3)), region_rr=(("S", 1.2),),
        diagnoses=(dx("I10", per_visit=0.9),), procedures=(px(ECG, 0.05),), visits_per_year=1.5,
    ),
    Condition(
        key="type2_diabetes", label="type 2 diabetes",
        prevalence=(0.002, 0.02, 0.06, 0.12, 0.11), incidence=0.04,
        risk_factors=(("obesity", 2.5), ("hypertension", 1.3)), region_rr=(("S", 1.2),),
        diagnoses=(
            dx({"E119": 0.8, "E1165": 0.12, "E1169": 0.08}, per_visit=0.95),
            dx("Z794", carriers=0.25, per_visit=0.6),  # long-term insulin
            dx("Z79899", carriers=0.5, per_visit=0.3),  # other long-term drug therapy
        ),
        procedures=(px("3E013VG", 0.03),), visits_per_year=2.5, replaces=("R7309", "R7301", "R7302"),
    ),
    Condition(
        key="type1_diabetes", label="type 1 diabetes",
        prevalence=(0.003, 0.004, 0.003, 0.002, 0.001),
        diagnoses=(dx({"E109": 0.7, "E1065": 0.3}), dx("Z794", per_visit=0.7)),
        visits_per_year=3.0, admissions_per_year=0.05,
        stay=Stay(diagnoses=(dx({"E1010": 0.8, "E1011": 0.2}),), procedures=(px("3E033VG", 0.9),), nights=(1, 4)),
    ),
    # --- lungs
    Condition(
        key="asthma", label="asthma",
        prevalence=(0.08, 0.07, 0.065, 0.06, 0.05), incidence=0.01, female_rr=1.2,
        diagnoses=(dx({"J45909": 0.55, "J4520": 0.15, "J4530": 0.1, "J4540": 0.1, "J4550": 0.05, "J45998": 0.05},
                      fixed=True),),
        procedures=(px(SPIROMETRY, 0.1),), visits_per_year=1.5, admissions_per_year=0.02,
        stay=Stay(diagnoses=(dx({"J45901": 0.8, "J45902": 0.2}),), procedures=(px("5A09357", 0.1),), nights=(1, 3)),
    ),
    Condition(
        key="copd", label="chronic obstructive pulmonary disease",
        prevalence=(0.0, 0.003, 0.04, 0.11, 0.13), incidence=0.03, risk_factors=(("tobacco", 4.0),),
        diagnoses=(dx({"J449": 0.75, "J441": 0.2, "J440": 0.05}),),
        procedures=(px(SPIROMETRY, 0.15), px(CHEST_XRAY, 0.1)), visits_per_year=2.0, admissions_per_year=0.2,
        stay=Stay(diagnoses=(dx("J441"), dx("J9601", per_visit=0.3)),
                  procedures=(px(CHEST_XRAY, 0.7), px("5A09357", 0.3), px("5A1945Z", 0.05)), nights=(2, 6)),
    ),
    Condition(
        key="sleep_apnea", label="obstructive sleep apnoea",
        prevalence=(0.005, 0.03, 0.07, 0.09, 0.06), male_rr=1.8, female_rr=0.8, risk_factors=(("obesity", 3.0),),
        diagnoses=(dx("G4733", per_visit=0.8),), procedures=(px("4A0ZXQZ", 0.1),), visits_per_year=0.7,
    ),
    Condition(
        key="allergic_rhinitis", label="allergic rhinitis",
        prevalence=(0.10, 0.12, 0.10, 0.07, 0.05),
        diagnoses=(dx({"J309": 0.6, "J301": 0.15, "J302": 0.15, "J3089": 0.1}, fixed=True),), visits_per_year=0.5,
    ),
    # --- hormones, mind, nerves
    Condition(
        key="hypothyroidism", label="hypothyroidism",
        prevalence=(0.001, 0.005, 0.015, 0.03, 0.04), incidence=0.02, female_rr=4.0,
        diagnoses=(dx({"E039": 0.85, "E038": 0.1, "E063": 0.05}),), visits_per_year=1.0,
    ),
    Condition(
        key="depression", label="depression",
        prevalence=(0.02, 0.08, 0.08, 0.065, 0.055), incidence=0.02, female_rr=1.7,
        risk_factors=(("alcohol", 2.0),),
        diagnoses=(dx({"F329": 0.5, "F331": 0.2, "F330": 0.1, "F339": 0.1, "F332": 0.05, "F341": 0.05}),),
        procedures=(px(PSYCHOTHERAPY_CBT, 0.2), px("GZ56ZZZ", 0.1), px(MEDICATION_MANAGEMENT, 0.2)),
        visits_per_year=3.0,
    ),
    Condition(
        key="anxiety", label="anxiety disorder",
        prevalence=(0.03, 0.09, 0.08, 0.06, 0.05), incidence=0.015, female_rr=1.6,
        risk_factors=(("depression", 2.0),),
        diagnoses=(dx({"F419": 0.6, "F411": 0.3, "F410": 0.1}),), procedures=(px(PSYCHOTHERAPY_CBT, 0.15),),
        visits_per_year=2.0,
    ),
    Condition(
        key="adhd", label="attention-deficit hyperactivity disorder",
        prevalence=(0.08, 0.03, 0.01, 0.002, 0.0), male_rr=2.0, female_rr=0.6,
        diagnoses=(dx({"F900": 0.4, "F901": 0.2, "F902": 0.4}, fixed=True),),
        procedures=(px(MEDICATION_MANAGEMENT, 0.3), px("GZ12ZZZ", 0.03)), visits_per_year=2.0,
    ),
    Condition(
        key="bipolar", label="bipolar disorder",
        prevalence=(0.002, 0.015, 0.012, 0.008, 0.005),
        diagnoses=(dx({"F319": 0.6, "F3130": 0.15, "F3160": 0.1, "F3181": 0.15}),),
        procedures=(px(MEDICATION_MANAGEMENT, 0.4),), visits_per_year=3.0, admissions_per_year=0.08,
        stay=Stay(diagnoses=(dx({"F312": 0.6, "F3113": 0.4}),), procedures=(px(MEDICATION_MANAGEMENT, 0.6),),
                  nights=(3, 12)),
    ),
    Condition(
        key="migraine", label="migraine",
        prevalence=(0.03, 0.08, 0.06, 0.03, 0.01), female_rr=2.5,
        diagnoses=(dx({"G43909": 0.5, "G43009": 0.2, "G43109": 0.2, "G43709": 0.1}, fixed=True),),
        visits_per_year=1.0,
    ),
    Condition(
        key="epilepsy", label="epilepsy",
        prevalence=(0.006, 0.007, 0.007, 0.008, 0.01),
        diagnoses=(dx({"G40909": 0.6, "G40209": 0.2, "G40309": 0.2}, fixed=True),),
        procedures=(px("4A00X4Z", 0.1),), visits_per_year=1.5,
    ),
    Condition(
        key="dementia", label="dementia",
        prevalence=(0.0, 0.0, 0.002, 0.04, 0.18), incidence=0.05,
        diagnoses=(dx({"F0390": 0.5, "G309": 0.3, "G301": 0.2}),), visits_per_year=1.5,
    ),
    Condition(
        key="parkinsons", label="Parkinson's disease",
        prevalence=(0.0, 0.0, 0.002, 0.01, 0.02), male_rr=1.5,
        diagnoses=(dx({"G20A1": 0.8, "G20A2": 0.2}),), visits_per_year=2.0,
    ),
    # --- heart and vessels
    Condition(
        key="atrial_fibrillation", label="atrial fibrillation",
        prevalence=(0.0, 0.001, 0.012, 0.07, 0.13), incidence=0.04, male_rr=1.3,
        risk_factors=(("hypertension", 1.6), ("obesity", 1.3), ("alcohol", 1.3)),
        diagnoses=(dx({"I4891": 0.7, "I480": 0.15, "I4820": 0.1, "I4819": 0.05}),
                   dx("Z7901", carriers=0.7, per_visit=0.6)),  # long-term anticoagulants
        procedures=(px(ECG, 0.3), px(ECHO, 0.05)), visits_per_year=2.0, admissions_per_year=0.05,
        stay=Stay(diagnoses=(dx("I4891"),), procedures=(px("5A2204Z", 0.4), px(ECHO, 0.5)), nights=(1, 3)),
    ),
    Condition(
        key="coronary_disease", label="coronary artery disease",
        prevalence=(0.0, 0.001, 0.015, 0.05, 0.08), incidence=0.03, male_rr=1.8,
        risk_factors=(("hypertension", 1.6), ("type2_diabetes", 1.8), ("hyperlipidaemia", 1.6), ("tobacco", 1.8)),
        diagnoses=(
            dx({"I2510": 0.75, "I25119": 0.1, "I25118": 0.05, "I2589": 0.1}),
            dx("Z955", carriers=0.3, per_visit=0.3),
        ),
        procedures=(px(ECG, 0.3), px(ECHO, 0.05)), visits_per_year=2.0, admissions_per_year=0.06,
        stay=Stay(diagnoses=(dx({"I2510": 0.5, "I25110": 0.5}),),
                  procedures=(px(CORONARY_ANGIOGRAPHY, 0.9), px(LEFT_HEART_CATH, 0.6), px(CORONARY_STENT, 0.5)),
                  nights=(1, 3)),
    ),
    Condition(
        key="peripheral_artery", label="peripheral artery disease",
        prevalence=(0.0, 0.0, 0.01, 0.05, 0.08), risk_factors=(("tobacco", 3.0), ("type2_diabetes", 2.0)),
        diagnoses=(dx({"I739": 0.6, "I70213": 0.2, "I70211": 0.1, "I70212": 0.1}),), visits_per_year=1.0,
    ),
    # --- kidneys, liver, blood
    Condition(
        key="fatty_liver", label="non-alcoholic fatty liver disease",
        prevalence=(0.002, 0.02, 0.05, 0.04, 0.02), risk_factors=(("obesity", 2.5), ("type2_diabetes", 1.8)),
        diagnoses=(dx("K760", per_visit=0.8),), procedures=(px("BF45ZZZ", 0.05),), visits_per_year=0.5,
    ),
    Condition(
        key="anaemia", label="iron-deficiency or unspecified anaemia",
        prevalence=(0.01, 0.03, 0.03, 0.05, 0.08), female_rr=1.5,
        diagnoses=(dx({"D649": 0.5, "D509": 0.4, "D508": 0.1}, per_visit=0.7),), visits_per_year=0.5,
    ),
    Condition(
        key="hiv", label="HIV disease",
        prevalence=(0.0, 0.004, 0.004, 0.002, 0.0005), male_rr=2.5,
        diagnoses=(dx("B20"),), visits_per_year=3.0,
    ),
    Condition(
        key="vitamin_d_deficiency", label="vitamin D deficiency",
        prevalence=(0.01, 0.06, 0.08, 0.08, 0.07), female_rr=1.3,
        diagnoses=(dx("E559", per_visit=0.8),), visits_per_year=0.3,
    ),
    # --- bones, joints, back
    Condition(
        key="osteoarthritis", label="osteoarthritis",
        prevalence=(0.0, 0.01, 0.10, 0.26, 0.35), incidence=0.03, female_rr=1.3, risk_factors=(("obesity", 1.6),),
        diagnoses=(  # the main site (knee, hip, other), then a second site for some
            dx({"M170": 0.15, "M1711": 0.12, "M1712": 0.12, "M179": 0.2, "M160": 0.05, "M1611": 0.05, "M1612": 0.05,
                "M169": 0.06, "M1990": 0.1}, families=(Family("M1901", 0.05), Family("M1904", 0.05)), fixed=True),
            dx({"M160": 0.3, "M1611": 0.25, "M1612": 0.25, "M169": 0.2}, carriers=0.25, fixed=True),
        ),
        procedures=(px("BQ07ZZZ", 0.1), px("BQ08ZZZ", 0.1), px("3E0U3GC", 0.1)),
        visits_per_year=1.5, admissions_per_year=0.03,
        stay=Stay(diagnoses=(dx({"M1711": 0.5, "M1712": 0.5}),),
                  procedures=(px("0SRC0J9", 0.5), px("0SRD0J9", 0.5)), nights=(1, 3)),
    ),
    Condition(
        key="low_back_pain", label="chronic low back pain",
        prevalence=(0.01, 0.06, 0.10, 0.11, 0.10), risk_factors=(("obesity", 1.3),),
        diagnoses=(dx({"M5450": 0.4, "M5416": 0.15, "M5417": 0.15, "M5126": 0.1, "M47816": 0.1,
                       "M5136": 0.1}, fixed=True),),
        procedures=(px("BR39ZZZ", 0.05), px("F07L6ZZ", 0.15)), visits_per_year=2.0,
    ),
    Condition(
        key="osteoporosis", label="osteoporosis",
        prevalence=(0.0, 0.002, 0.03, 0.12, 0.22), male_rr=0.2,
        diagnoses=(dx({"M810": 0.9, "M818": 0.1}),), procedures=(px("BR09ZZ1", 0.3),), visits_per_year=0.7,
    ),
    Condition(
        key="gout", label="gout",
        prevalence=(0.0, 0.005, 0.03, 0.06, 0.07), male_rr=1.6, female_rr=0.5, risk_factors=(("obesity", 1.5),),
        diagnoses=(dx({"M109": 0.8, "M1A9XX0": 0.2}),), visits_per_year=1.0,
    ),
    # --- skin, eyes, prostate
    Condition(
        key="psoriasis", label="psoriasis",
        prevalence=(0.005, 0.025, 0.03, 0.03, 0.02), diagnoses=(dx({"L409": 0.8, "L400": 0.2}, fixed=True),),
        visits_per_year=0.7,
    ),
    Condition(
        key="cataract", label="cataract",
        prevalence=(0.0, 0.002, 0.03, 0.20, 0.40), risk_factors=(("type2_diabetes", 1.3),),
        diagnoses=(dx({"H2513": 0.3, "H2511": 0.2, "H2512": 0.2, "H2510": 0.1, "H269": 0.2}, fixed=True),),
        procedures=(px("08RJ3JZ", 0.05), px("08RK3JZ", 0.05)), visits_per_year=0.7,
    ),
    Condition(
        key="glaucoma", label="open-angle glaucoma",
        prevalence=(0.0, 0.002, 0.015, 0.05, 0.09),
        diagnoses=(dx({"H4010X0": 0.4}, families=(Family("H4010X", 0.6),), fixed=True),), visits_per_year=1.5,
    ),
    Condition(
        key="prostate_hyperplasia", label="benign prostatic hyperplasia",
        prevalence=(0.0, 0.005, 0.08, 0.28, 0.40), female_rr=0.0,
        diagnoses=(dx({"N400": 0.8, "N401": 0.2}),), procedures=(px("BT40ZZZ", 0.05),), visits_per_year=1.0,
    ),
    # --- cancers
    Condition(
        key="breast_cancer", label="breast cancer",
        prevalence=(0.0, 0.001, 0.012, 0.03, 0.03), male_rr=0.01,
        diagnoses=(dx({"C50911": 0.5, "C50912": 0.5}, fixed=True), dx("Z170", carriers=0.7, per_visit=0.5)),
        procedures=(px(CHEMOTHERAPY, 0.2), px("BH02ZZZ", 0.1)), visits_per_year=4.0, admissions_per_year=0.05,
        stay=Stay(diagnoses=(dx({"C50911": 0.5, "C50912": 0.5}),),
                  procedures=(px("0HTT0ZZ", 0.5), px("0HTU0ZZ", 0.5)), nights=(1, 3)),
    ),
    Condition(
        key="prostate_cancer", label="prostate cancer",
        prevalence=(0.0, 0.0, 0.01, 0.05, 0.07), female_rr=0.0,
        diagnoses=(dx("C61"),), procedures=(px("DV001ZZ", 0.15),), visits_per_year=2.0,
    ),
    Condition(
        key="colorectal_cancer", label="colorectal cancer",
        prevalence=(0.0, 0.0005, 0.003, 0.01, 0.015),
        diagnoses=(dx({"C189": 0.5, "C20": 0.3, "C187": 0.2}, fixed=True),),
        procedures=(px(CHEMOTHERAPY, 0.3), px("0DJD8ZZ", 0.1)), visits_per_year=4.0, admissions_per_year=0.1,
        stay=Stay(diagnoses=(dx({"C189": 0.5, "C20": 0.3, "C187": 0.2}),), procedures=(px("0DTN0ZZ", 0.6),),
                  nights=(3, 7)),
    ),
    Condition(
        key="lung_cancer", label="lung cancer",
        prevalence=(0.0, 0.0, 0.002, 0.008, 0.01), risk_factors=(("tobacco", 6.0), ("copd", 2.0)),
        diagnoses=(dx({"C3490": 0.5, "C3411": 0.25, "C3431": 0.25}, fixed=True),),
        procedures=(px(CHEMOTHERAPY, 0.4), px("BW24ZZZ", 0.2)), visits_per_year=5.0, admissions_per_year=0.2,
        stay=Stay(diagnoses=(dx({"C3490": 0.5, "C3411": 0.25, "C3431": 0.25}),),
                  procedures=(px("0BJ08ZZ", 0.5), px(CHEMOTHERAPY, 0.3)), nights=(2, 6)),
    ),
    # --- complications: arise only by progression (all-zero prevalence), always after their cause
    Condition(
        key="diabetic_kidney", label="type 2 diabetes with diabetic chronic kidney disease",
        prevalence=(0.0,) * 5, diagnoses=(dx("E1122"),), visits_per_year=1.0, replaces=("E119",),
    ),
    Condition(
        key="diabetic_retinopathy", label="type 2 diabetes with retinopathy",
        prevalence=(0.0,) * 5,
        diagnoses=(dx({"E11319": 0.5}, families=(Family("E11329", 0.3), Family("E11339", 0.2)), fixed=True),),
        procedures=(px("3E0C3GC", 0.1), px("085E3ZZ", 0.05)), visits_per_year=1.5, replaces=("E119",),
    ),
    Condition(
        key="diabetic_neuropathy", label="type 2 diabetes with polyneuropathy",
        prevalence=(0.0,) * 5, diagnoses=(dx({"E1142": 0.7, "E1140": 0.3}),), visits_per_year=1.0,
        replaces=("E119",),
    ),
    Condition(
        key="diabetic_foot_ulcer", label="type 2 diabetes with foot ulcer",
        prevalence=(0.0,) * 5,
        diagnoses=(dx("E11621"), dx({}, families=(Family("L9741", 0.5), Family("L9742", 0.5), Family("L9751", 0.3),
                                                 Family("L9752", 0.3)), fixed=True)),
        procedures=(px("0HBMXZZ", 0.3),), visits_per_year=4.0, admissions_per_year=0.2,
        stay=Stay(diagnoses=(dx("E11621"), dx("L97419")), procedures=(px("0Y6P0Z0", 0.2), px(IV_ANTIBIOTIC, 0.8)),
                  nights=(3, 8)),
    ),
    Condition(
        key="hypertensive_ckd", label="hypertensive chronic kidney disease",
        prevalence=(0.0,) * 5, diagnoses=(dx("I129"),), visits_per_year=0.5, replaces=("I10",),
    ),
    Condition(
        key="ckd_stage3", label="chronic kidney disease stage 3",
        prevalence=(0.0,) * 5, diagnoses=(dx({"N1830": 0.5, "N1831": 0.3, "N1832": 0.2}),),
        procedures=(px("BT43ZZZ", 0.05),), visits_per_year=1.5,
    ),
    Condition(
        key="ckd_stage4", label="chronic kidney disease stage 4",
        prevalence=(0.0,) * 5, diagnoses=(dx("N184"),), visits_per_year=3.0, replaces=("N1830", "N1831", "N1832"),
    ),
    Condition(
        key="end_stage_renal", label="end-stage renal disease on dialysis",
        prevalence=(0.0,) * 5, diagnoses=(dx("N186"), dx("Z992", per_visit=0.9)),
        procedures=(px(HEMODIALYSIS, 0.9),), visits_per_year=12.0, replaces=("N184",), admissions_per_year=0.3,
        stay=Stay(diagnoses=(dx({"E875": 0.5, "E8770": 0.5}), dx("N186")),
                  procedures=(px(HEMODIALYSIS, 0.9), px("02HV33Z", 0.2)), nights=(2, 6)),
    ),
    Condition(
        key="ckd_anaemia", label="anaemia in chronic kidney disease",
        prevalence=(0.0,) * 5, diagnoses=(dx("D631", per_visit=0.8),), visits_per_year=0.5,
    ),
    Condition(
        key="hypertensive_heart_failure", label="hypertensive heart disease with heart failure",
        prevalence=(0.0,) * 5,
        diagnoses=(dx("I110"), dx({"I5022": 0.3, "I5032": 0.3, "I5042": 0.1, "I509": 0.3}, fixed=True)),
        procedures=(px(ECHO, 0.15), px(ECG, 0.2)), visits_per_year=3.0, admissions_per_year=0.35, replaces=("I10",),
        stay=Stay(diagnoses=(dx("I110"), dx({"I5023": 0.4, "I5033": 0.4, "I5043": 0.2})),
                  procedures=(px(ECHO, 0.3), px(CHEST_XRAY, 0.6)), nights=(2, 7)),
    ),
    Condition(
        key="ischaemic_heart_failure", label="heart failure after coronary disease",
        prevalence=(0.0,) * 5, diagnoses=(dx({"I5022": 0.4, "I5032": 0.3, "I509": 0.3}, fixed=True),),
        procedures=(px(ECHO, 0.15),), visits_per_year=3.0, admissions_per_year=0.3,
        stay=Stay(diagnoses=(dx({"I5023": 0.5, "I5033": 0.5}),), procedures=(px(ECHO, 0.3), px(CHEST_XRAY, 0.6)),
                  nights=(2, 7)),
    ),
    Condition(
        key="chronic_respiratory_failure", label="chronic respiratory failure with oxygen",
        prevalence=(0.0,) * 5, diagnoses=(dx("J9611"), dx("Z9981", per_visit=0.7)), visits_per_year=2.0,
    ),
    Condition(
        key="old_myocardial_infarction", label="after a myocardial infarction",
        prevalence=(0.0,) * 5, diagnoses=(dx("I252", per_visit=0.7), dx("Z955", carriers=0.6, per_visit=0.5)),
        procedures=(px(ECG, 0.3),), visits_per_year=2.0,
    ),
    Condition(
        key="stroke_sequelae", label="after a cerebral infarction",
        prevalence=(0.0,) * 5,
        diagnoses=(dx({"I69351": 0.3, "I69354": 0.1, "I69320": 0.1}, families=(Family("I6939", 0.5),), fixed=True),),
        procedures=(px("F07L6ZZ", 0.3),), visits_per_year=3.0,
    ),
)

PROGRESSIONS: tuple[Progression, ...] = (
    Progression("prediabetes", ("type2_diabetes",), rate=0.06, after_years=1.0, risk_factors=(("obesity", 1.5),)),
    Progression("type2_diabetes", ("diabetic_kidney", "ckd_stage3"), rate=0.06, after_years=1.5,
                risk_factors=(("hypertension", 1.5),)),
    Progression("type2_diabetes", ("diabetic_retinopathy",), rate=0.05, after_years=1.5),
    Progression("type2_diabetes", ("diabetic_neuropathy",), rate=0.05, after_years=1.5),
    Progression("diabetic_neuropathy", ("diabetic_foot_ulcer",), rate=0.06, after_years=0.5,
                risk_factors=(("peripheral_artery", 2.0), ("tobacco", 1.5))),
    Progression("hypertension", ("hypertensive_ckd", "ckd_stage3"), rate=0.02, after_years=2.0,
                risk_factors=(("type2_diabetes", 1.5),)),
    Progression("hypertension", ("hypertensive_heart_failure",), rate=0.025, after_years=1.5,
                risk_factors=(("coronary_disease", 2.5), ("atrial_fibrillation", 2.0), ("obesity", 1.3))),
    Progression("coronary_disease", ("ischaemic_heart_failure",), rate=0.015, after_years=1.0),
    Progression("copd", ("chronic_respiratory_failure",), rate=0.025, after_years=1.5,
                risk_factors=(("tobacco", 1.5),)),
    Progression("ckd_stage3", ("ckd_anaemia",), rate=0.05, after_years=0.5),
    Progression("ckd_stage3", ("ckd_stage4",), rate=0.1, after_years=1.0, risk_factors=(("type2_diabetes", 1.5),)),
    Progression("ckd_stage4", ("end_stage_renal",), rate=0.15, after_years=0.5),
)
