"""Source readers by the `--source` name."""

from __future__ import annotations

from sparseehr_mcore.data.sources.base import SourceReader
from sparseehr_mcore.data.sources.events_table import EventsTableReader
from sparseehr_mcore.data.sources.meds import MedsReader
from sparseehr_mcore.data.sources.mimic_iii import MimicIIIReader
from sparseehr_mcore.data.sources.mimic_iv import MimicIVReader
from sparseehr_mcore.data.sources.omop import OmopReader

SOURCES: dict[str, type[SourceReader]] = {
    reader.name: reader for reader in (MimicIVReader, MimicIIIReader, OmopReader, MedsReader, EventsTableReader)
}
