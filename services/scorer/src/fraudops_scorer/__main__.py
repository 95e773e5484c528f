"""Run the scorer service: `python -m fraudops_scorer`."""

from fraudops.service import serve
from fraudops_scorer.settings import ScorerSettings

if __name__ == "__main__":
    serve("fraudops_scorer.main:app", ScorerSettings.service_name, ScorerSettings)
