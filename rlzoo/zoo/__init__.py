"""The rlzoo command line: YAML hyperparameters -> experiment -> run folder (``rlzoo train`` ...)."""
