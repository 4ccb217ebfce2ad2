"""Process exit codes of `ncf-batch`, documented in docs/operations.md."""

OK = 0
FAILURE = 1  # anything unexpected
USAGE = 2  # bad command-line arguments (argparse's own code)
BAD_INPUT = 3  # malformed or missing input data (DataFormatError)
QUALITY_GATE = 4  # the model is not good enough to publish
DOWNLOAD = 5  # fetch-data could not download or verify the archive
