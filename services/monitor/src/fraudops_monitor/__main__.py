"""Run the monitor service: `python -m fraudops_monitor`."""

from fraudops.service import serve
from fraudops_monitor.settings import MonitorSettings

if __name__ == "__main__":
    serve("fraudops_monitor.main:app", MonitorSettings.service_name, MonitorSettings)
