"""The lookup service: a Flask app that serves the batch job's published Parquet (never TensorFlow)."""
