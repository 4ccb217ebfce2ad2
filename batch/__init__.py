"""The nightly batch job and its command line (`python -m batch ...`, console script `ncf-batch`)."""
