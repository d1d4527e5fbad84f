"""Breast-cancer diagnosis across 5 hospitals with skewed label mixes."""

rounds = 10
num_clients = 5
local_epochs = 2
batch_size = 16
learning_rate = 0.001
optimizer = "adam"
strategy = "FedAvg"
partitioning = "dirichlet"
partitioning_options = {"alpha": 1.0}
seed = 7
checkpoint = {"keep_last": 1, "best_metric": "f1"}
