"""MNIST, 10 clients, FedAvg. Literals only: this file is read, never executed."""

rounds = 10
num_clients = 10
local_epochs = 2
batch_size = 32
learning_rate = 0.05
optimizer = "sgd"
momentum = 0.9
strategy = "FedAvg"
partitioning = "iid"   # or "dirichlet" with partitioning_options = {"alpha": 0.5}
seed = 42
checkpoint = {"keep_last": 2, "best_metric": "accuracy"}
