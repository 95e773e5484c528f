"""Run the trainer service: `python -m fraudops_trainer`."""

from fraudops.service import serve
from fraudops_trainer.settings import TrainerSettings

if __name__ == "__main__":
    serve("fraudops_trainer.main:app", TrainerSettings.service_name, TrainerSettings)
