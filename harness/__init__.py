"""Helpers shared by the tests and the bench: the independent candle reference and the
repo's server scripts. Neither imports the pipeline's processing code."""
