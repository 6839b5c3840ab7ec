"""orbcast: OpenRouter generation history into Grafana Cloud Traces, and back out as answers."""

__version__ = "0.1.0"
