"""Studies: many runs of one config (hyperparameter search, cross-validation), above `tfft.training`."""
