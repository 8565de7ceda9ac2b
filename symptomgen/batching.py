"""Token ids, labels and dynamically padded batches.

Labels are made by hand: padding positions are ``-100`` (ignored by the loss),
the single EOS at the end of each example stays a target so the model learns
to stop, and with ``loss_on="target"`` the prompt tokens are ignored too.
(``DataCollatorForLanguageModeling`` with ``pad = eos`` would mask every EOS.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import format_prompt, format_target

IGNORE = -100


def encode_example(tokenizer, name: str, target: str, max_length: int, loss_on: str = "target") -> dict:
    """``{"input_ids", "labels"}`` for one row; prompt and target are tokenized apart.

    Tokenizing the prompt on its own gives exactly the ids generation feeds the
    model, so the boundary between prompt and target is the same in both.
    """
    prompt_ids = tokenizer(format_prompt(name), add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(format_target(target), add_special_tokens=False)["input_ids"]
    prompt_ids = prompt_ids[: max(1, max_length // 2)]
    room = max_length - len(prompt_ids) - 1
    ids = prompt_ids + target_ids[: max(room, 0)] + [tokenizer.eos_token_id]
    if loss_on == "full":
        labels = list(ids)
    else:
        labels = [IGNORE] * len(prompt_ids) + ids[len(prompt_ids):]
    return {"input_ids": ids, "labels": labels}


def encode_frame(tokenizer, frame, max_length: int, loss_on: str = "target") -> list[dict]:
    return [encode_example(tokenizer, p, t, max_length, loss_on) for p, t in zip(frame["prompt"], frame["target"])]


class EncodedDataset(torch.utils.data.Dataset):
    """A list of encoded rows that also reports lengths (for length grouping)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]

    @property
    def lengths(self) -> list[int]:
        return [len(r["input_ids"]) for r in self.rows]

    @property
    def real_tokens(self) -> int:
        return sum(self.lengths)


@dataclass
class PadCollator:
    """Pads a batch to its own longest row (right padding, mask 0, label -100)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def mean_token_loss(model, rows: list[dict], pad_token_id: int, batch_size: int = 16) -> float:
    """Cross-entropy averaged over every labelled token (not over batches)."""
    model.eval()
    device = next(model.parameters()).device
    collate = PadCollator(pad_token_id)
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shift_logits = logits[:, :-1].float()
        shift_labels = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                                 shift_labels.reshape(-1), ignore_index=IGNORE,
                                                 reduction="sum")
        total += loss.item()
        count += int((shift_labels != IGNORE).sum())
    return total / max(count, 1)
