"""Studies over many runs of one assembled config: cross-validation, hyperparameter search
(tune), ensembles, label issues and near-duplicates. Sits above tfft.training, below the
run-directory commands and the CLI."""
