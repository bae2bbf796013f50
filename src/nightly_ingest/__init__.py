"""Run the nightly-ingest pipeline locally and drive it from the command line."""
