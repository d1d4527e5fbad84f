"""A small CNN (about 27k parameters) for MNIST and its training and validation loops."""

import torch
from torch import nn

from flautim.fl import Experiment


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),   # 8 x 13 x 13
            nn.Conv2d(8, 16, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),  # 16 x 5 x 5
        )
        self.fc1 = nn.Linear(16 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


class MNISTExperiment(Experiment):
    def training_loop(self, data_loader):
        self.model.train()
        loss_fn = nn.CrossEntropyLoss()
        total_loss, correct, seen = 0.0, 0, 0
        for images, labels in data_loader:
            images, labels = images.to(self.device), labels.to(self.device)
            self.optimizer.zero_grad()
            outputs = self.model(images)
            loss = loss_fn(outputs, labels)
            loss.backward()
            self.optimizer.step()
            total_loss += loss.item() * len(labels)
            correct += (outputs.argmax(1) == labels).sum().item()
            seen += len(labels)
        return total_loss / seen, {"accuracy": correct / seen}

    def validation_loop(self, data_loader):
        self.model.eval()
        loss_fn = nn.CrossEntropyLoss(reduction="sum")
        total_loss, correct, seen = 0.0, 0, 0
        with torch.no_grad():
            for images, labels in data_loader:
                images, labels = images.to(self.device), labels.to(self.device)
                outputs = self.model(images)
                total_loss += loss_fn(outputs, labels).item()
                correct += (outputs.argmax(1) == labels).sum().item()
                seen += len(labels)
        return total_loss / max(seen, 1), {"accuracy": correct / max(seen, 1)}
