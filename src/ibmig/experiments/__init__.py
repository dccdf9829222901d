"""Scenarios, one run stage by stage, sweeps and reports: the layer that may read the
clock. Printing is the CLI's (`ibmig.cli`)."""
