"""The ``mnist`` part of ``peers.py``: one epoch of rnnflow's ``mnist_cnn`` loop against
pytorch/examples ``mnist/main.py`` on the mirror's real MNIST (``peers.py --help`` says how)."""

from __future__ import annotations

import argparse
import json
import time

import benchlib as B  # first: rnnflow's environment defaults before torch loads
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ExampleNet(nn.Module):
    """pytorch/examples mnist/main.py ``Net``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
        return F.log_softmax(self.fc2(self.dropout2(x)), dim=1)


class ExampleMNIST(torch.utils.data.Dataset):
    """``datasets.MNIST(transform=Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]))``
    per item, from the uint8 arrays (no PIL round trip)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images)
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i].float().div(255).unsqueeze(0)
        return (x - 0.1307) / 0.3081, int(self.labels[i])


def run_mnist(args: argparse.Namespace, device: torch.device) -> dict:
    """Both loops for one epoch at ``--mnist-batch``: seconds, images/s, test accuracy."""
    from pipelines import data as D
    from pipelines import tensor
    from pipelines.models import build_model
    from stages.corpora.idx import read_idx

    d = B.mirror() / "mnist"
    x = read_idx(d / "partial-train" / "train-images-idx3-ubyte.gz", dims=3)
    y = read_idx(d / "partial-train" / "train-labels-idx1-ubyte.gz", dims=1)
    xt = read_idx(d / "t10k-images-idx3-ubyte.gz", dims=3)
    yt = read_idx(d / "t10k-labels-idx1-ubyte.gz", dims=1)
    batch = args.mnist_batch
    out = {"train_images": len(y), "test_images": len(yt), "batch_size": batch, "runs": {}}
    out |= B.model_record("mnist_cnn", batch_size=batch)

    # rnnflow: the spec the format hop writes (x_scale, train mean/std), TensorJob, fit's step
    cfg = B.model_cfg("mnist_cnn", batch_size=batch)
    scaled = x.astype(np.float32) / 255.0
    spec = {"task": "classify", "x_shape": [28, 28], "num_classes": 10, "y_shape": []}
    spec |= {"x_scale": 255.0, "x_mean": float(scaled.mean()), "x_std": float(scaled.std())}
    feats = lambda a: torch.from_numpy(tensor.features(a, spec))  # noqa: E731
    labels = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    corpus = tensor.Corpus("mnist", spec, (feats(x), labels(y)), (feats(xt), labels(yt)))

    def rnnflow_epoch(cfg, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
        """One epoch of TensorJob's batches and fit's step: seconds, images/s, test accuracy."""
        job = tensor.TensorJob(cfg, corpus, device)
        model.train()
        B.sync(device)
        t0 = time.perf_counter()
        for loss, _, _ in job.losses(model, 0, D.epoch_generator(cfg.seed, 0)):
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        B.sync(device)
        secs = time.perf_counter() - t0
        accuracy = job.validate(model.eval())["accuracy"]
        return {"seconds": round(secs, 2), "images_per_s": round(len(y) / secs),
                "test_accuracy": round(accuracy, 4)}  # fmt: skip

    # the loops alone: the example's network, initialisation and optimizer, no augmentation
    torch.manual_seed(1)  # the example's --seed default, as below
    net = ExampleNet().to(device)
    # (B, H, W) batches, as TensorJob gives them, into a network that takes (B, 1, H, W); the
    # example's log-softmax output under rnnflow's cross-entropy is its own NLL loss
    images = nn.Sequential(nn.Unflatten(1, (1, 28)), net)
    adadelta = torch.optim.Adadelta(net.parameters(), lr=1.0)
    same = rnnflow_epoch(cfg.model_copy(update={"augment": False}), images, adadelta)
    out["runs"]["rnnflow_loop"] = {"loop": "TensorJob + the example's Net and Adadelta lr 1.0"}
    out["runs"]["rnnflow_loop"] |= same

    # rnnflow's own choices, as mnist_cnn trains
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.family, cfg, spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out["runs"]["rnnflow_mnist_cnn"] = {
        "loop": f"TensorJob (augment {cfg.augment}, max_shift {cfg.max_shift}) + {cfg.family} "
        f"(hidden {cfg.hidden}) + Adam lr {cfg.lr}",
        **rnnflow_epoch(cfg, model, opt),
    }

    # pytorch/examples mnist/main.py, one epoch
    torch.manual_seed(1)  # the example's --seed default
    loader = torch.utils.data.DataLoader(ExampleMNIST(x, y), batch_size=batch, shuffle=True)
    net = ExampleNet().to(device)
    optimizer = torch.optim.Adadelta(net.parameters(), lr=1.0)
    net.train()
    B.sync(device)
    t0 = time.perf_counter()
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        F.nll_loss(net(data), target).backward()
        optimizer.step()
    B.sync(device)
    secs2 = time.perf_counter() - t0
    test = ExampleMNIST(xt, yt)
    with torch.no_grad():
        net.eval()
        xs = torch.stack([test[i][0] for i in range(len(test))]).to(device)
        pred = torch.cat([net(xs[i : i + 1000]).argmax(1) for i in range(0, len(xs), 1000)])
    out["runs"]["pytorch_examples_mnist"] = {
        "loop": "DataLoader(shuffle) + per-item ToTensor/Normalize + Adadelta lr 1.0",
        "seconds": round(secs2, 2),
        "images_per_s": round(len(y) / secs2),
        "test_accuracy": round(float((pred.cpu() == test.labels).float().mean()), 4),
    }
    out["ratio_rnnflow_over_example_speed"] = round(secs2 / same["seconds"], 2)
    print(f"[mnist] {json.dumps(out['runs'])}")
    return out
