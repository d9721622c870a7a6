"""Reference NCF: a plain PyTorch NeuMF written without any of our code.

16-dim GMF, 32-dim MLP embeddings, MLP 64-32-16, 4 uniform negatives per positive (redrawn when
they are among the user's positives unless ``--no-reject``), 10 epochs, Adam 1e-3, batch 1024,
BCE on logits, no validation, every pair scored by the forward pass: the NeuMF of FINDINGS.md
(valid 0.1259 / test 0.1394 NDCG@10 on the default ML-100k split). ``ncf_reference.py`` uses
the same network over several seeds.

    .venv/bin/python benchmarks/reference_ncf.py INPUT_DIR OUT_DIR --seed 42
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from bench_io import Measurement, read_inputs, reference_args, write_outputs
from torch import nn


class NeuMF(nn.Module):
    def __init__(self, n_users, n_items, mf_dim=16, layers=(64, 32, 16)):
        super().__init__()
        self.mf_u, self.mf_i = nn.Embedding(n_users, mf_dim), nn.Embedding(n_items, mf_dim)
        self.mlp_u = nn.Embedding(n_users, layers[0] // 2)
        self.mlp_i = nn.Embedding(n_items, layers[0] // 2)
        self.mlp = nn.Sequential(
            *[
                m
                for a, b in zip(layers[:-1], layers[1:], strict=True)
                for m in (nn.Linear(a, b), nn.ReLU())
            ]
        )
        self.final = nn.Linear(mf_dim + layers[-1], 1)
        for emb in (self.mf_u, self.mf_i, self.mlp_u, self.mlp_i):
            nn.init.normal_(emb.weight, std=0.01)

    def forward(self, u, i):
        mf = self.mf_u(u) * self.mf_i(i)
        mlp = self.mlp(torch.cat([self.mlp_u(u), self.mlp_i(i)], dim=1))
        return self.final(torch.cat([mf, mlp], dim=1)).squeeze(1)


def fit_reference(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    seed: int,
    reject: bool = True,
    epochs: int = 10,
    negatives: int = 4,
    batch_size: int = 1024,
    lr: float = 1e-3,
):
    """Train the plain NeuMF; returns ``recommend(user_idx, k) -> (items, scores)``."""
    torch.manual_seed(seed)
    pairs = np.unique(np.stack([user_idx, item_idx], axis=1), axis=0)
    pos_u, pos_i = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
    keys = pairs[:, 0] * n_items + pairs[:, 1]
    model = NeuMF(n_users, n_items)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        neg_u = pos_u.repeat_interleave(negatives)
        neg_i = torch.randint(0, n_items, (len(neg_u),))
        while reject:  # redraw negatives that are the user's positives
            clash = torch.from_numpy(np.isin(neg_u.numpy() * n_items + neg_i.numpy(), keys))
            if not clash.any():
                break
            neg_i[clash] = torch.randint(0, n_items, (int(clash.sum()),))
        u, i = torch.cat([pos_u, neg_u]), torch.cat([pos_i, neg_i])
        y = torch.cat([torch.ones(len(pos_u)), torch.zeros(len(neg_u))])
        perm = torch.randperm(len(y))
        u, i, y = u[perm], i[perm], y[perm]
        for s in range(0, len(y), batch_size):
            loss = loss_fn(
                model(u[s : s + batch_size], i[s : s + batch_size]), y[s : s + batch_size]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    seen = sp.csr_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n_users, n_items)
    )

    @torch.no_grad()
    def recommend(users, k, batch=256):
        users = np.asarray(users, dtype=np.int64)
        top_items, top_scores = [], []
        for start in range(0, len(users), batch):
            chunk = users[start : start + batch]
            u = torch.from_numpy(chunk).repeat_interleave(n_items)
            i = torch.arange(n_items).repeat(len(chunk))
            scores = model(u, i).reshape(len(chunk), n_items).numpy().copy()
            rows = seen[chunk].tocoo()
            scores[rows.row, rows.col] = -np.inf
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            top_items.append(top)
            top_scores.append(np.take_along_axis(scores, top, axis=1))
        return np.vstack(top_items), np.vstack(top_scores)

    return recommend


def main() -> None:
    args = reference_args(__doc__, seed=42, threads=1, no_reject=False)
    torch.set_num_threads(args.threads)

    train, users, meta = read_inputs(args.input_dir)
    k = int(meta["k"])
    with Measurement() as measured:
        recommend = measured.fit(
            fit_reference,
            train["user_idx"].to_numpy(np.int64),
            train["item_idx"].to_numpy(np.int64),
            int(meta["n_users"]),
            int(meta["n_items"]),
            args.seed,
            reject=not args.no_reject,
        )
        items, scores = measured.recommend(recommend, users, k)
    notes = f"plain PyTorch NeuMF, 10 epochs, {args.threads} torch thread(s), forward scoring"
    write_outputs(args.out_dir, users, items, scores, measured, notes)


if __name__ == "__main__":
    main()
