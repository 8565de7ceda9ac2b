"""The seed notebook's training loop, re-implemented faithfully as the benchmark baseline.

Kept in ``bench/`` on purpose: it is what users compare us to, not code we ship.
What it does (see GUIDE §2): each row becomes ``f"{Name} | {Symptoms}"`` tokenized
on the fly with ``encode_plus(max_length=128, padding="max_length")``,
``pad_token = eos_token``, ``labels = input_ids`` (so padding is inside the loss),
no attention mask, shuffled batches of 8, ``Adam(lr=5e-4)``, no scheduler, no
clipping; validation the same way under ``no_grad``.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, Dataset

SEED_MAX_LENGTH = 128
SEED_BATCH = 8
SEED_LR = 5e-4


class SeedDataset(Dataset):
    """The notebook's ``LanguageDataset``: tokenizes each row when it is fetched."""

    def __init__(self, names: list[str], symptoms: list[str], tokenizer):
        self.rows = list(zip(names, symptoms))
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: int):
        name, symptoms = self.rows[idx]
        # ``encode_plus`` is gone from transformers 5; calling the tokenizer is the same operation.
        return self.tokenizer(f"{name} | {symptoms}", return_tensors="pt", max_length=SEED_MAX_LENGTH,
                              padding="max_length", truncation=True)


def real_tokens(dataset: SeedDataset) -> int:
    """Non-pad tokens the loop computes (what a length-aware loop would have to compute)."""
    tok = dataset.tokenizer
    return sum(min(len(tok(f"{n} | {s}")["input_ids"]), SEED_MAX_LENGTH) for n, s in dataset.rows)


def train_steps(model, dataset: SeedDataset, steps: int, generator: torch.Generator | None = None,
                device: str | torch.device | None = None) -> dict:
    """Run ``steps`` optimizer steps exactly as the notebook does; time them (data loading included).

    ``device``: where the notebook's ``.to(device)`` sends each batch (the model must already be there).  Each
    step's ``loss.item()`` waits for the device, so the step times are real on CUDA too.
    """
    loader = DataLoader(dataset, batch_size=SEED_BATCH, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=SEED_LR)
    model.train()
    losses, step_times, done = [], [], 0
    started = time.perf_counter()
    while done < steps:
        for batch in loader:
            t = time.perf_counter()
            optimizer.zero_grad()
            inputs = batch["input_ids"].squeeze(1)
            inputs = inputs.to(device) if device is not None else inputs
            targets = inputs.clone()
            outputs = model(input_ids=inputs, labels=targets)
            loss = outputs.loss
            loss.backward()
            optimizer.step()
            losses.append(float(loss.item()))
            step_times.append(time.perf_counter() - t)
            done += 1
            if done == steps:
                break
    return {"seconds": time.perf_counter() - started, "losses": losses, "step_seconds": step_times}


@torch.no_grad()
def validate(model, dataset: SeedDataset, max_batches: int | None = None) -> dict:
    """The notebook's validation pass (padding to 128, pad inside the loss); timed."""
    loader = DataLoader(dataset, batch_size=SEED_BATCH)
    model.eval()
    total, batches = 0.0, 0
    started = time.perf_counter()
    for batch in loader:
        inputs = batch["input_ids"].squeeze(1)
        total += model(input_ids=inputs, labels=inputs.clone()).loss.item()
        batches += 1
        if max_batches and batches >= max_batches:
            break
    return {"loss": total / max(batches, 1), "batches": batches, "seconds": time.perf_counter() - started}
