"""EHR data pipeline: source readers, harmonisation, timelines, indexed-dataset writing."""
