"""Model-level reporting: metrics from predictions, plots, the end-of-run evaluation and report.md.

Below training (which calls it when a run ends) and below the run-directory commands of
`tfft.evaluation` (evaluate, predict, export). TensorFlow is never imported here.
"""
