"""Cross-modal retrieval: zero-shot on the test rows, for the component pairs a method declares to
embed two modalities in one space (`AdapterMethod.retrieval_pairs`, `adapters/base.py`).

For a pair (a, b) of components and the n valid test rows where both are finite, in manifest row
order (so row i of a and row i of b are the same ``sample_id``: the pairing is the manifest's)::

    â_i = a_i / max(‖a_i‖₂, ε),  b̂_j = b_j / max(‖b_j‖₂, ε)        ε = 1e-12 (a zero vector stays 0)
    S_ij = â_i · b̂_j                                             cosine similarity, (n, n)
    rank_i = #{ j : S_ij ≥ S_ii }                                 1 = the partner comes first
    R@k = (1/n) #{ i : rank_i ≤ k },   median rank = median_i rank_i

Ties are pessimistic: every other candidate exactly as similar as the true partner counts ahead of
it (so a constant embedding ranks every partner last, rank n, never first). The median of an even
number of ranks is the mean of the two middle ones. Both directions are scored — a → b (queries
from a, candidates from b) and b → a (ranks of Sᵀ) — over the same n rows; every test row is one
query and one of the n candidates (chance: R@k = k/n, median rank ≈ (n + 1)/2).

Nothing is fitted and no train or val row is read: the numbers measure the method's own space,
zero-shot on test. Only the manifest's ``sample_id`` pairing counts as a match: a dataset whose
test split repeats one item (Flickr30K-Multi with ``pairing="all"`` lists each image once per
caption language) holds identical candidates, which tie with the partner and count ahead of it;
its default ``pairing="one"`` lists each image once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmpipe.adapters import METHODS
from mmpipe.adapters.base import RetrievalPair
from mmpipe.store.errors import UnknownNameError, UserError
from mmpipe.store.manifest import Manifest
from mmpipe.store.results import RetrievalRow
from mmpipe.store.runs import RunRecord

RECALL_KS = (1, 5, 10)
RECALL_FAMILY, RECALL_PATTERN = "recall_at_<k>", r"recall_at_(?P<k>[0-9]+)"  # the metric names recall_name gives
MEDIAN_RANK = "median_rank"
EPSILON = 1e-12
BLOCK_ROWS = 2048  # queries per similarity block: (BLOCK_ROWS, n) float64 at a time, never (n, n)


def recall_name(k: int) -> str:
    """The metric name of recall at k: ``recall_at_<k>``."""
    return f"recall_at_{k}"


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (n, d) divided by their L2 norm (at least ε): unit rows, a zero row stays 0."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPSILON)


def cosine_similarity(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """S (n_q, n_c): the cosine similarity of every query row with every candidate row."""
    return normalised(queries) @ normalised(candidates).T


def partner_ranks(similarity: np.ndarray, partners: np.ndarray | None = None) -> np.ndarray:
    """The pessimistic rank (1-based) of each query's partner: rank_i = #{j : S_ij ≥ S_i,p(i)}, p(i)
    = ``partners[i]`` (default i: the diagonal). ``similarity`` is (n_q, n_c); returns (n_q,) int."""
    rows = np.arange(similarity.shape[0])
    partners = rows if partners is None else np.asarray(partners)
    own = similarity[rows, partners]  # (n_q,)
    return (similarity >= own[:, None]).sum(axis=1)


def retrieval_ranks(queries: np.ndarray, candidates: np.ndarray, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``partner_ranks`` of ``cosine_similarity(queries, candidates)`` with query i's partner
    candidate i, computed ``block_rows`` queries at a time."""
    q, c = normalised(queries), normalised(candidates)
    ranks = [partner_ranks(q[start:start + block_rows] @ c.T, np.arange(start, min(start + block_rows, len(q))))
             for start in range(0, len(q), block_rows)]
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Recall at k of cross-modal retrieval (R@k): the fraction of the test queries whose true
    partner (the same sample_id in the other modality's component) ranks among the first k of all
    n test candidates by cosine similarity of the L2-normalised embeddings, ties counted ahead of
    the partner (pessimistic); zero-shot on test, nothing fitted."""
    return float(np.mean(np.asarray(ranks) <= k))


def median_rank(ranks: np.ndarray) -> float:
    """Median rank of cross-modal retrieval (MedR): the median over the test queries of the rank
    (1 = first) of the true partner (the same sample_id) among all n test candidates by cosine
    similarity of the L2-normalised embeddings, ties counted ahead of the partner (pessimistic);
    an even count takes the mean of the two middle ranks; zero-shot on test, nothing fitted."""
    return float(np.median(np.asarray(ranks)))


METRIC_NAMES = (*(recall_name(k) for k in RECALL_KS), MEDIAN_RANK)  # the order of `scores` and of the report


def scores(ranks: np.ndarray) -> dict[str, float]:
    """Every retrieval metric of one direction's ranks, by metric name (R@1, R@5, R@10, median)."""
    return {**{recall_name(k): recall_at(ranks, k) for k in RECALL_KS}, MEDIAN_RANK: median_rank(ranks)}


# -- a run's retrieval ------------------------------------------------------------------------------
@dataclass
class RetrievalOutcome:
    rows: list[RetrievalRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per declared pair not scored


def declared_pairs(record: RunRecord) -> tuple[RetrievalPair, ...]:
    """The pairs the run's method declares for its modalities and stored config. A run this
    version cannot read the config of (a method no longer registered, a field since removed) is a
    UserError, which the caller names and skips."""
    try:
        cls = METHODS.get(record.method)
    except UnknownNameError:
        raise UserError(f"method {record.method!r} is not registered in this mmpipe") from None
    try:
        config = cls.stored_config(record.config)
    except (TypeError, ValueError, UserError) as error:
        raise UserError(f"its stored {record.method} config is not this version's ({error})") from None
    return cls.retrieval_pairs(tuple(record.inputs), config)


def protocol(manifest: Manifest) -> str:
    split = manifest.split_protocol or "manifest train/val/test split"
    return (f"{split}; zero-shot cross-modal retrieval on the valid test rows (nothing fitted, no train/val row "
            "read): cosine similarity of L2-normalised components, partner = the same sample_id, pessimistic "
            "ranks (ties counted ahead)")


def score_pairs(run_id: str, pairs: Sequence[RetrievalPair], components: Mapping[str, np.ndarray],
                valid: np.ndarray, manifest: Manifest) -> RetrievalOutcome:
    """Both directions of every pair whose two components are in ``components`` ((N, r) each, in
    manifest row order), on the valid test rows where both are finite."""
    outcome = RetrievalOutcome()
    test = np.asarray(valid, dtype=bool) & (manifest.table["split"].to_numpy() == "test")
    for pair in pairs:
        first, second = pair.components
        if first not in components or second not in components:
            continue  # not among the components asked for
        a, b = (np.asarray(components[c], dtype=np.float64) for c in (first, second))
        if a.shape[1] != b.shape[1]:
            outcome.skipped.append(f"retrieval {first} ↔ {second}: widths {a.shape[1]} and {b.shape[1]} differ; "
                                   "no cosine between them, not scored")
            continue
        rows = test & np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
        n = int(rows.sum())
        if n < 2:
            outcome.skipped.append(f"retrieval {first} ↔ {second}: {n} valid test row(s); not scored")
            continue
        for (query_modality, query, q), (target_modality, target, t) in (
                ((pair.modalities[0], first, a), (pair.modalities[1], second, b)),
                ((pair.modalities[1], second, b), (pair.modalities[0], first, a))):
            for metric, value in scores(retrieval_ranks(q[rows], t[rows])).items():
                outcome.rows.append(RetrievalRow(run_id, query_modality, target_modality, query, target, metric,
                                                 value, protocol(manifest), n))
    return outcome


def run_retrieval(record: RunRecord, run_id: str, components: Mapping[str, np.ndarray], valid: np.ndarray,
                  manifest: Manifest) -> RetrievalOutcome:
    """The retrieval rows of one run: every pair its method declares (`declared_pairs`) among
    ``components``; a run whose pairs cannot be read gets one skipped line and no rows."""
    try:
        pairs = declared_pairs(record)
    except UserError as error:
        return RetrievalOutcome(skipped=[f"retrieval not scored: {error}"])
    return score_pairs(run_id, pairs, components, valid, manifest)
