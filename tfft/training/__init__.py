"""Training: the run directory, the phase loop over `model.fit`, callbacks, distribution."""
