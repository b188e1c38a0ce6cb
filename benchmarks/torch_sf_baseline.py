"""PyTorch baseline for bench_training.py: the SF model and training epoch as the SF authors run it.

Written for this project (not copied) to mirror the forward pass and training loop of the SF
authors' public PyTorch code (Ram et al. 2025, github:rithram/spartan: tf_model.py, tf_encoder.py,
tf_encoder_layer.py, multihead_attention.py, attn_masks.py, ch.py) with the same shapes and ops:
embedding * sqrt(d) + sinusoidal positions + dropout; pre-LN blocks (LayerNorm without affine,
eps 0 before the first attention); per-head width d; masks applied with masked_fill(-1e15) then
softmax; TOPK masks built from torch.topk and filled per batch element in a Python loop, as
attn_masks.mask_topk does (``--vectorized-topk`` uses one scatter instead: a stronger baseline);
attention-probability dropout; MLP Linear -> Dropout -> activation -> Linear; mean pooling; linear
classifier; SGD, clip_grad_norm_(0.5), StepLR per epoch; DataLoader(batch 25, shuffle=True).

Needs torch (not a project dependency): run it with a separate environment, e.g.
    python -m venv /work/torchvenv && /work/torchvenv/bin/pip install torch numpy
    /work/torchvenv/bin/python benchmarks/torch_sf_baseline.py --variant FULL --epochs 2
The last line printed is the median seconds per training epoch (evaluation excluded).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def even_pairs(n: int, length: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, length))
    y = np.logical_xor(x[:, :-1], x[:, 1:]).sum(axis=1) % 2
    return x, y


def parse(variant: str):
    m = re.match(r"^(FULL|TOPK|BAND|BLOC)(?:\((\d+)\))?(?::(\d+))?$", variant.upper())
    if not m:
        raise SystemExit(f"unknown variant {variant!r}; valid: FULL, TOPK(k), BAND(k)[:g], BLOC(k)[:g]")
    return m.group(1), (int(m.group(2)) if m.group(2) else None), int(m.group(3) or 0)


def static_mask(kind: str, n: int, k: int, g: int) -> torch.Tensor:
    m = torch.zeros(n + g, n + g, dtype=torch.bool)
    if kind == "BAND":
        left = (k - 1) // 2
        for i in range(n):
            s = min(max(i - left, 0), n - k)
            m[i, s:s + k] = True
    else:  # BLOC
        for i in range(0, n, k):
            m[i:i + k, i:i + k] = True
    m[n:, :] = True
    m[:, n:] = True
    return m


class Attention(nn.Module):
    def __init__(self, d, heads, kind, k, mask, p, vectorized):
        super().__init__()
        self.h, self.d, self.kind, self.k, self.p, self.vec = heads, d, kind, k, p, vectorized
        self.wq, self.wk, self.wv = (nn.Linear(d, d * heads) for _ in range(3))
        self.wo = nn.Linear(d * heads, d)
        self.register_buffer("mask", mask if mask is not None else torch.ones(1, 1, dtype=torch.bool))

    def forward(self, x):
        B, n, _ = x.shape
        q, k, v = (w(x).view(B, n, self.h, self.d).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        a = (q @ k.transpose(-2, -1)) / math.sqrt(self.d)
        if self.kind == "FULL":
            a = F.softmax(a, dim=-1)
        else:
            if self.kind == "TOPK":
                _, ind = torch.topk(a, self.k, dim=-1)
                mask = torch.zeros_like(a, dtype=torch.bool)
                if self.vec:
                    mask.scatter_(-1, ind, True)
                else:  # per batch element, as the authors' mask_topk
                    rows = torch.arange(n).view(1, n, 1).expand(self.h, n, self.k)
                    heads = torch.arange(self.h).view(self.h, 1, 1).expand(self.h, n, self.k)
                    for mm, ii in zip(mask, ind):
                        mm[heads, rows, ii] = True
            else:
                mask = self.mask
            a = F.softmax(a.masked_fill(~mask, -1e15), dim=-1)
        a = F.dropout(a, self.p, self.training)
        o = (a @ v).transpose(1, 2).reshape(B, n, self.h * self.d)
        return self.wo(o)


class Block(nn.Module):
    def __init__(self, d, d_mlp, heads, first, kind, k, mask, p, act, vectorized):
        super().__init__()
        self.attn = Attention(d, heads, kind, k, mask, p, vectorized)
        acts = {"relu": nn.ReLU(), "gelu": nn.GELU(), "mish": nn.Mish()}
        self.ffn = nn.Sequential(nn.Linear(d, d_mlp), nn.Dropout(p), acts[act], nn.Linear(d_mlp, d))
        self.n1 = nn.LayerNorm(d, eps=0.0 if first else 1e-5, elementwise_affine=False)
        self.n2 = nn.LayerNorm(d, eps=1e-5, elementwise_affine=False)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        x = x + self.drop(self.attn(self.n1(x)))
        return x + self.drop(self.ffn(self.n2(x)))


class SFClassifier(nn.Module):
    def __init__(self, ntok, ncls, n, d=64, d_mlp=64, heads=1, blocks=5, variant="FULL", p=0.01, act="relu",
                 vectorized=False):
        super().__init__()
        kind, k, g = parse(variant)
        core = n - g
        mask = static_mask(kind, core, k, g) if kind in ("BAND", "BLOC") else None
        self.d = d
        self.emb = nn.Embedding(ntok, d)
        pos = torch.arange(n).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(1, n, d)
        pe[0, :, 0::2] = torch.sin(pos * div)
        pe[0, :, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe)
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(Block(d, d_mlp, heads, i == 0, kind, k, mask, p, act, vectorized)
                                    for i in range(blocks))
        self.head = nn.Linear(d, ncls)
        self.emb.weight.data.uniform_(-0.1, 0.1)
        self.head.weight.data.uniform_(-0.1, 0.1)
        self.head.bias.data.zero_()

    def forward(self, t):
        x = self.drop(self.emb(t) * math.sqrt(self.d) + self.pe[:, : t.size(1)])
        for b in self.blocks:
            x = b(x)
        return self.head(x.mean(dim=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="FULL")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--vectorized-topk", action="store_true")
    ap.add_argument("--json", help="write the timings here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kind, k, g = parse(args.variant)
    x, y = even_pairs(args.n_train, 40, 0)
    n = 40 if kind == "FULL" else -(-40 // k) * k
    xt = np.full((len(x), n + g), 2, dtype=np.int64)
    xt[:, :40] = x
    for i in range(g):
        xt[:, n + i] = 3 + i
    ds = torch.utils.data.TensorDataset(torch.tensor(xt), torch.tensor(y, dtype=torch.long))
    dl = torch.utils.data.DataLoader(ds, batch_size=25, shuffle=True)
    model = SFClassifier(3 + g, 2, n + g, variant=args.variant, vectorized=args.vectorized_topk)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1.0, gamma=0.9995)
    crit = nn.CrossEntropyLoss()
    times = []
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        for xb, yb in dl:
            loss = crit(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
        times.append(time.perf_counter() - t0)
        sched.step()
    med = statistics.median(times)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"variant": args.variant, "epoch_s": times, "median_s": med, "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "vectorized_topk": args.vectorized_topk}, fh)
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} {args.variant}: epochs "
          + ", ".join(f"{t:.2f}" for t in times), file=sys.stderr)
    print(f"{med:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
