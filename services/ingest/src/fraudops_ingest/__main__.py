"""Run the ingest service: `python -m fraudops_ingest`."""

from fraudops.service import serve
from fraudops_ingest.settings import IngestSettings

if __name__ == "__main__":
    serve("fraudops_ingest.main:app", IngestSettings.service_name, IngestSettings)
