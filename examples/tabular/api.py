"""A small multilayer perceptron for 30 tabular features and 2 classes."""

import torch
from torch import nn

from flautim.fl import Experiment, metric


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(30, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2)
        )

    def forward(self, x):
        return self.layers(x)


class TabularExperiment(Experiment):
    def training_loop(self, data_loader):
        self.model.train()
        loss_fn = nn.CrossEntropyLoss()
        total, correct, seen = 0.0, 0, 0
        for features, labels in data_loader:
            features, labels = features.to(self.device), labels.to(self.device)
            self.optimizer.zero_grad()
            outputs = self.model(features)
            loss = loss_fn(outputs, labels)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(labels)
            correct += (outputs.argmax(1) == labels).sum().item()
            seen += len(labels)
        return total / seen, {"accuracy": correct / seen}

    def validation_loop(self, data_loader):
        self.model.eval()
        loss_fn = nn.CrossEntropyLoss(reduction="sum")
        total, seen = 0.0, 0
        true_pos = false_pos = false_neg = correct = 0
        with torch.no_grad():
            for features, labels in data_loader:
                features, labels = features.to(self.device), labels.to(self.device)
                outputs = self.model(features)
                predicted = outputs.argmax(1)
                total += loss_fn(outputs, labels).item()
                correct += (predicted == labels).sum().item()
                true_pos += ((predicted == 1) & (labels == 1)).sum().item()
                false_pos += ((predicted == 1) & (labels == 0)).sum().item()
                false_neg += ((predicted == 0) & (labels == 1)).sum().item()
                seen += len(labels)
        # A metric reported with metric() is merged into this round's metrics.
        metric("f1", 2 * true_pos / max(2 * true_pos + false_pos + false_neg, 1))
        return total / max(seen, 1), {"accuracy": correct / max(seen, 1)}
