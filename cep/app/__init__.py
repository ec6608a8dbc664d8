"""Application wiring: pipelines, rule loading, reload and replay."""
