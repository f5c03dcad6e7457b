"""A run: its config, its directory layout and checkpoints, the training harness, the one loader of a trained
run and its published weights. Above the models and the data, below the metrics."""
