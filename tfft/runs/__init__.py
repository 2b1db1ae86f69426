"""The runs layer: a run directory, below everything that writes or reads one.

`tfft.runs.directory` chooses where a run is written and opens a finished one (`open_run`,
`load_model`, a split's files and labels listed as training listed them); `tfft.runs.resume`
says whether a config may continue an interrupted run (`check_resumable`);
`tfft.runs.thresholds` reads a multi-label run's `thresholds.json`. The file names are
`tfft.layout`'s. Training, the studies, compression and the run-directory commands (evaluate,
predict, export, interpret) all open runs through this package, so none of them imports another
to read a run.
"""
