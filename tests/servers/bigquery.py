"""BigQuery fixtures (goccy/bigquery-emulator): filled in by the BigQuery warehouse work."""
