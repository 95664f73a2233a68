"""GEM harmonisation on known codes, from both GEM sources (the package and the official CMS files)."""

from __future__ import annotations

import pytest

from sparseehr_mcore.data.harmonize.gems import (
    GemTable,
    load_cms_gems,
    load_cms_reverse_gems,
    load_package_diagnosis_gem,
    load_package_reverse_diagnosis_gem,
    parse_cms_gem,
)
from sparseehr_mcore.data.harmonize.rules import Harmoniser, HarmonizeConfig
from sparseehr_mcore.data.timeline import CPT, ICD9CM, ICD9PCS, ICD10CM, ICD10PCS


@pytest.fixture(scope="module")
def cms_gems(shared_data):
    return load_cms_gems(shared_data / "cms-gems-2018")


@pytest.fixture(scope="module")
def cms_reverse_gems(shared_data):
    return load_cms_reverse_gems(shared_data / "cms-gems-2018")


def full_codes(diagnosis, procedure=None, **overrides) -> Harmoniser:
    config = HarmonizeConfig(icd10cm_prefix=0, icd10pcs_prefix=0, **overrides)
    return Harmoniser(config=config, diagnosis_gem=diagnosis, procedure_gem=procedure)


@pytest.mark.parametrize("code", ["25000", "250.00", " 250.00 "])
def test_diabetes_maps_to_e119_with_both_gem_sources(cms_gems, code):
    for harmoniser in (full_codes(cms_gems[0]), full_codes(load_package_diagnosis_gem())):
        mapping = harmoniser.map_code(ICD9CM, code)
        assert mapping.targets == ((ICD10CM, "E119"),)
        assert mapping.outcome == "approximate"  # the GEM flags 250.00 -> E11.9 as approximate


def test_combination_mapping_gives_one_code_per_choice_list(cms_gems):
    # 073.0 ornithosis with pneumonia: scenario 1 = A70 (choice list 1) + J17 (choice list 2).
    mapping = full_codes(cms_gems[0]).map_code(ICD9CM, "0730")
    assert mapping.outcome == "combination"
    assert mapping.targets == ((ICD10CM, "A70"), (ICD10CM, "J17"))


def test_no_map_code_is_never_given_its_no_map_target(cms_gems):
    diagnosis = cms_gems[0]
    no_map = sorted(code for code, entries in diagnosis.entries.items() if all(e.no_map for e in entries))
    assert "36570" in no_map  # 365.70 glaucoma stage unspecified: flagged "no map" by CMS
    strict = full_codes(diagnosis, category_fallback=False)
    assert strict.map_code(ICD9CM, "36570").outcome == "unmapped"
    assert strict.map_code(ICD9CM, "36570").targets == ()
    # With the category fallback, a no-map code may land on an ICD-10 category, never on a full no-map target.
    fallback = full_codes(diagnosis, reverse_gem=False).map_code(ICD9CM, "36570")
    assert fallback.outcome in ("fallback", "unmapped")
    assert all(len(code) == 3 for _, code in fallback.targets)


def test_header_code_falls_back_to_the_category_its_children_share(cms_gems):
    # 567.2 is a non-billable header (children 567.21-567.29 all map into K65).
    assert "5672" not in cms_gems[0].entries
    assert full_codes(cms_gems[0]).map_code(ICD9CM, "5672").targets == ((ICD10CM, "K65"),)


def test_procedure_gem_and_fallback_without_it(cms_gems):
    diagnosis, procedure = cms_gems
    mapped = full_codes(diagnosis, procedure).map_code(ICD9PCS, "3893")
    assert mapped.outcome in ("exact", "approximate") and mapped.targets[0][0] == ICD10PCS
    assert len(mapped.targets[0][1]) == 7
    kept = full_codes(diagnosis, None).map_code(ICD9PCS, "3893")
    assert kept == type(kept)("fallback", ((ICD9PCS, "3893"),))


def test_canonical_prefixes_and_fixed_forms(cms_gems):
    harmoniser = Harmoniser(config=HarmonizeConfig(icd10cm_prefix=3, icd10pcs_prefix=4),
                            diagnosis_gem=cms_gems[0], procedure_gem=None)
    assert harmoniser.map_code(ICD10CM, "e11.65").targets == ((ICD10CM, "E11"),)
    assert harmoniser.map_code(ICD10PCS, "0DB68ZX").targets == ((ICD10PCS, "0DB6"),)
    assert harmoniser.map_code(CPT, "99213-25").targets == ((CPT, "99213"),)
    assert harmoniser.map_code(CPT, "g0378").targets == ((CPT, "G0378"),)
    for system, code in ((CPT, "9921"), (ICD10CM, "11E"), (ICD10PCS, "0DB6"), (ICD9CM, "ABCDE"), (ICD9PCS, "V681")):
        assert harmoniser.map_code(system, code).outcome == "malformed", (system, code)


def test_fingerprint_follows_rules_and_tables(cms_gems):
    diagnosis, procedure = cms_gems
    base = full_codes(diagnosis, procedure).fingerprint
    assert base == full_codes(diagnosis, procedure).fingerprint
    assert base != full_codes(diagnosis, None).fingerprint
    assert base != Harmoniser(config=HarmonizeConfig(), diagnosis_gem=diagnosis, procedure_gem=procedure).fingerprint
    assert base != full_codes(load_package_diagnosis_gem(), procedure).fingerprint


def test_cms_parser_reads_crlf_and_rejects_garbage():
    entries = parse_cms_gem("0010  A000    00000\r\n0730  A70     10111\r\n0730  J17     10112\r\n")
    assert [e.target for e in entries["0730"]] == ["A70", "J17"]
    assert entries["0730"][1].combination and entries["0730"][1].choice_list == 2
    with pytest.raises(Exception, match="line 1"):
        parse_cms_gem("0010 A000\n")


def test_bad_prefix_lengths_are_rejected():
    with pytest.raises(ValueError, match="icd10cm_prefix"):
        HarmonizeConfig(icd10cm_prefix=2)


def reverse_step(diagnosis, reverse, **overrides) -> Harmoniser:
    return Harmoniser(config=HarmonizeConfig(icd10cm_prefix=0, icd10pcs_prefix=0, **overrides),
                      diagnosis_gem=diagnosis, procedure_gem=None, reverse_diagnosis_gem=reverse)


def test_no_map_code_maps_through_the_reverse_gem_with_both_sources(cms_gems, cms_reverse_gems):
    # E935.2 (adverse effect of other opiates) is "no map" forward; ten ICD-10 codes (T40.0X5A,
    # T40.2X5A, ...) name it in the reverse GEM, all in category T40: the lowest is chosen.
    for diagnosis, reverse in ((cms_gems[0], cms_reverse_gems[0]),
                               (load_package_diagnosis_gem(), load_package_reverse_diagnosis_gem())):
        assert all(entry.no_map for entry in diagnosis.entries["E9352"])
        named = sorted(code for code, entries in reverse.entries.items()
                       if any(e.target == "E9352" and not e.no_map for e in entries))
        assert "T402X5A" in named and {code[:3] for code in named} == {"T40"}
        mapping = reverse_step(diagnosis, reverse).map_code(ICD9CM, "E935.2")
        assert mapping.outcome == "reverse_gem"
        assert mapping.targets == ((ICD10CM, named[0]),) == ((ICD10CM, "T400X5A"),)
        assert reverse_step(diagnosis, reverse, reverse_gem=False).map_code(ICD9CM, "E935.2").outcome == "unmapped"
    # Cut to the canonical prefix like every other target.
    default = Harmoniser(config=HarmonizeConfig(), diagnosis_gem=cms_gems[0], procedure_gem=None,
                         reverse_diagnosis_gem=cms_reverse_gems[0])
    assert default.map_code(ICD9CM, "E9352").targets == ((ICD10CM, "T400"),)


def test_reverse_gem_rule_most_frequent_category_then_lowest_code():
    forward = GemTable(parse_cms_gem("9990  NoDx    01000\n"), "test", "0")
    reverse = GemTable(parse_cms_gem(
        "A0110   9990   10000\n"  # category A01 once
        "B0210   9990   10000\n"  # category B02 twice: the most frequent
        "B0200   9990   10000\n"
        "A0000   NoDx   01000\n"  # a reverse "no map" row names nothing
    ), "test", "1")
    assert reverse_step(forward, reverse).map_code(ICD9CM, "9990").targets == ((ICD10CM, "B0200"),)
    tie = GemTable(parse_cms_gem("C0010   9990   10000\nA0110   9990   10000\n"), "test", "2")
    assert reverse_step(forward, tie).map_code(ICD9CM, "9990").targets == ((ICD10CM, "A0110"),)


def test_procedure_no_map_code_maps_through_the_reverse_procedure_gem(cms_gems, cms_reverse_gems):
    diagnosis, procedure = cms_gems
    assert all(entry.no_map for entry in procedure.entries["0040"])  # 00.40 procedure on single vessel
    config = HarmonizeConfig(icd10pcs_prefix=0)
    on = Harmoniser(config=config, diagnosis_gem=diagnosis, procedure_gem=procedure,
                    reverse_diagnosis_gem=cms_reverse_gems[0], reverse_procedure_gem=cms_reverse_gems[1])
    mapping = on.map_code(ICD9PCS, "0040")
    assert mapping.outcome == "reverse_gem" and mapping.targets[0][0] == ICD10PCS
    assert any(e.target == "0040" for e in cms_reverse_gems[1].entries[mapping.targets[0][1]])
    assert full_codes(diagnosis, procedure).map_code(ICD9PCS, "0040").outcome == "unmapped"


def test_fingerprint_records_the_reverse_gem_and_its_switch(cms_gems, cms_reverse_gems):
    diagnosis = cms_gems[0]
    with_reverse = reverse_step(diagnosis, cms_reverse_gems[0])
    assert with_reverse.fingerprint != reverse_step(diagnosis, cms_reverse_gems[0], reverse_gem=False).fingerprint
    assert with_reverse.fingerprint != reverse_step(diagnosis, None).fingerprint
    assert with_reverse.fingerprint != reverse_step(diagnosis, load_package_reverse_diagnosis_gem()).fingerprint
    assert with_reverse.describe()["reverse_diagnosis_gem"]["origin"] == "CMS:2018_I10gem.txt"


def test_package_gems_are_parsed_only_when_a_code_needs_them():
    """Preprocessing harmonises in the parent and in every worker: a process whose codes never reach
    a GEM must not pay for parsing it (the reverse GEM alone takes about a second)."""
    forward, reverse = load_package_diagnosis_gem(), load_package_reverse_diagnosis_gem()
    harmoniser = Harmoniser(config=HarmonizeConfig(), diagnosis_gem=forward, procedure_gem=None,
                            reverse_diagnosis_gem=reverse)
    parsed = lambda table: "entries" in vars(table)  # noqa: E731 (cached_property's slot)
    described = harmoniser.describe()  # the manifest's counts come without parsing either GEM
    assert harmoniser.map_code(ICD10CM, "E11.9").outcome == "exact" and harmoniser.fingerprint
    assert not parsed(forward) and not parsed(reverse)
    assert harmoniser.map_code(ICD9CM, "250.00").outcome in ("exact", "approximate")
    assert parsed(forward) and not parsed(reverse)
    assert harmoniser.map_code(ICD9CM, "E935.2").outcome == "reverse_gem"
    assert parsed(reverse)
    assert harmoniser.describe() == described  # counted without parsing == counted from the entries
