"""OTLP receivers."""
