"""The causal-LM loss without the full ``tokens × vocabulary`` logits.

GPT-2's own forward builds logits for every position (a 240-token batch of distilgpt2: 240 × 50 257 floats, kept for
the backward pass, plus their gradient), then its loss throws away the positions whose label is ``-100``.  Here the
trainer asks the model's body for hidden states only, keeps the positions that have a label (with ``--loss-on
target``, only the symptoms: fewer FLOPs, not just less memory), and runs the LM head and cross-entropy over them in
chunks.  Each chunk's gradient is computed in the forward pass (the loss is a scalar, so the backward only scales
it), so at most one chunk of logits ever exists: the approach of Liger's fused linear cross-entropy, in plain torch.
A batch whose labelled positions fit one chunk (every default batch) takes autograd's own path over those positions:
the same memory, and no extra pass over the fp32 weight gradient.

``LabelledLossTrainer`` is the project's Trainer.  It runs the body under the Trainer's mixed precision
(``Accelerator.autocast``): the Trainer itself applies autocast only around ``model.forward``, which this loss does
not call, so without it the body would train in fp32 (which is why this loss once measured 2.6× slower).

The loss equals ``ForCausalLMLoss`` (the model's own): the sum over labelled next tokens, divided by
``num_items_in_batch`` when the Trainer gives it (gradient accumulation), else their mean.
"""

from __future__ import annotations

import torch
from transformers import Trainer

IGNORE = -100
CHUNK_TOKENS = 2048
"""Positions per chunk: 2048 × 50 257 fp32 logits are 412 MB at most at any time (a whole batch of the real table
is about 240 positions, one chunk)."""


class _LinearCrossEntropy(torch.autograd.Function):
    """Sum of cross-entropy of ``hidden @ weight.T`` against ``targets``, chunk by chunk; gradients made in forward."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start:start + chunk], targets[start:start + chunk]
            logits = (h @ weight.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            rows = torch.arange(t.shape[0], device=t.device)
            total += (lse - logits[rows, t]).sum()
            # d(sum CE)/d logits = softmax - one-hot, made in place over the chunk's logits
            grad = logits.sub_(lse.unsqueeze(1)).exp_()
            grad[rows, t] -= 1.0
            grad = grad.to(h.dtype) if grad_hidden is not None or grad_weight is not None else grad
            if grad_hidden is not None:
                grad_hidden[start:start + chunk] = grad @ weight.to(grad.dtype)
            if grad_weight is not None:
                grad_weight += (grad.t() @ h).float()
        ctx.save_for_backward(grad_hidden if grad_hidden is not None else torch.empty(0),
                              grad_weight if grad_weight is not None else torch.empty(0))
        ctx.has = (grad_hidden is not None, grad_weight is not None)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        has_h, has_w = ctx.has
        return ((grad_hidden * grad_out).to(grad_hidden.dtype) if has_h else None,
                (grad_weight * grad_out).to(ctx.weight_dtype) if has_w else None, None, None)


def labelled_loss_total(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                        chunk: int = CHUNK_TOKENS) -> tuple[torch.Tensor, int]:
    """(the summed cross-entropy, the number of labelled next tokens) of ``hidden`` (batch, positions, width) through
    an LM head ``weight`` (vocab, width): position *i* predicts label *i + 1*; labels ``-100`` never get logits."""
    targets = labels[:, 1:].reshape(-1)
    keep = targets != IGNORE
    picked = hidden[:, :-1].reshape(-1, hidden.shape[-1])[keep]
    if picked.shape[0] <= chunk:
        total = torch.nn.functional.cross_entropy((picked @ weight.t()).float(), targets[keep], reduction="sum")
    else:
        total = _LinearCrossEntropy.apply(picked, weight, targets[keep], chunk)
    return total, picked.shape[0]


def causal_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                   num_items_in_batch: torch.Tensor | int | None = None, chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """``ForCausalLMLoss`` of ``hidden`` (batch, positions, width) through an LM head ``weight`` (vocab, width):
    position *i* predicts label *i + 1*; labels ``-100`` are skipped and never get logits."""
    total, labelled = labelled_loss_total(hidden, weight, labels, chunk)
    if num_items_in_batch is None:
        return total / max(labelled, 1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def split_head(model) -> tuple[torch.nn.Module, torch.Tensor] | None:
    """(the body that returns hidden states, the LM head's weight) of a GPT-2 LM, a LoRA-wrapped one included; None
    for anything else (a data-parallel wrapper must run its own forward for its gradient hooks, a head with a bias
    or an adapted head is not a plain matrix), which then keeps the model's own loss."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head, body = getattr(base, "lm_head", None), getattr(base, "transformer", None)
    if body is None or type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    return body, head.weight


class LabelledLossTrainer(Trainer):
    """The Trainer with ``causal_lm_loss`` in place of the model's own loss when ``split_head`` allows it: logits for
    labelled positions only, never the whole batch's, and no fp32 copy of them for the model's output."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        parts = split_head(model)
        if (parts is None or return_outputs or "labels" not in inputs or self.label_smoother is not None
                or self.compute_loss_func is not None):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        body, weight = parts
        features = {"use_cache": False, **{k: v for k, v in inputs.items() if k != "labels"}}
        with self.accelerator.autocast():  # what the Trainer's wrapped model.forward would apply
            hidden = body(**features).last_hidden_state
            loss = causal_lm_loss(hidden, weight, inputs["labels"], num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss scales a model's own loss
        return loss
