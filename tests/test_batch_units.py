"""Units of the batch job: top-N selection with masking, settings precedence (flags > env > config file >
defaults), and the structured scorer over several blocks and threads."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from batch.cli import build_parser
from batch.flags import flags_to_settings
from batch.settings import GateSettings, RunSettings
from model.ncf.config import NCFConfig
from model.ncf.params import init_params
from model.ncf.scoring import BLOCK_USERS, logits_all_items, logits_pairs
from model.topn import available_cores, mask_rated, top_n


def brute_force_top_n(scores: np.ndarray, rated: np.ndarray, n: int) -> list[list[int]]:
    out = []
    for row, mask in zip(scores, rated, strict=True):
        items = [i for i in np.lexsort((np.arange(row.size), -row)) if not mask[i]]
        out.append(items[:n])
    return out


def test_top_n_masks_rated_items_and_matches_brute_force():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=(9, 30)).astype(np.float32)  # many ties
    rated = rng.random((9, 30)) < 0.3
    rated[0, :27] = True  # only 3 unrated items left for user 0
    masked = scores.copy()
    unrated = mask_rated(masked, sp.csr_matrix(rated))
    np.testing.assert_array_equal(unrated, (~rated).sum(axis=1))
    items, best = top_n(masked, 5)
    expected = brute_force_top_n(scores, rated, 5)
    for row in range(9):
        k = min(5, int(unrated[row]))
        assert items[row, :k].tolist() == expected[row]
        np.testing.assert_array_equal(best[row, :k], scores[row, expected[row]])
        assert np.all(np.isneginf(best[row, k:]))
    threaded = top_n(masked, 5, workers=4)
    np.testing.assert_array_equal(threaded[0], items)
    np.testing.assert_array_equal(threaded[1], best)


def test_top_n_rows_with_and_without_ties_at_the_cut_in_one_chunk():
    rng = np.random.default_rng(4)
    scores = rng.random((8, 40)).astype(np.float32)  # distinct scores
    scores[1::2] = rng.integers(0, 4, size=(4, 40))  # every other row tied at the cut-off
    rated = np.zeros_like(scores, dtype=bool)
    items, best = top_n(scores.copy(), 6)
    assert items.tolist() == brute_force_top_n(scores, rated, 6)
    np.testing.assert_array_equal(best, np.take_along_axis(scores, items, axis=1))


def test_top_n_with_n_at_least_the_item_count():
    scores = np.array([[0.1, 0.9, 0.5]], dtype=np.float32)
    items, best = top_n(scores, 10)
    assert items.tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(best, [[0.9, 0.5, 0.1]])


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_structured_scorer_matches_pairs_across_blocks_and_threads(workers):
    config = NCFConfig(kind="neumf", factors=4, layers=(16, 8, 4, 2))
    n_users, n_items = 3 * BLOCK_USERS + 1, 13
    params = {k: (v * 30).astype(np.float32) for k, v in init_params(config, n_users, n_items, 5).items()}
    params["mlp/dense_1/bias"][:] = 0.3  # non-zero biases exercise the per-user shifts
    users = np.arange(n_users)[::-1].copy()
    grid = logits_all_items(params, config, users, workers=workers)
    pairs = logits_pairs(params, config, np.repeat(users, n_items), np.tile(np.arange(n_items), n_users))
    np.testing.assert_allclose(grid, pairs.reshape(n_users, n_items), rtol=1e-4, atol=1e-4)
    h = params["mlp/user_embedding"][users] @ params["mlp/dense_0/kernel"][:8]
    assert (h > 0).any() and (h < 0).any()


def _settings(argv: list[str]) -> RunSettings:
    return RunSettings(**flags_to_settings(build_parser().parse_args(["run", *argv]), RunSettings))


def test_settings_precedence_flags_env_file_defaults(tmp_path, monkeypatch):
    for key in ("NCF_TOP_N", "NCF_CHUNK_USERS", "NCF_TRAIN__EPOCHS", "NCF_CONFIG_FILE", "NCF_OUTPUT_DIR"):
        monkeypatch.delenv(key, raising=False)
    config = tmp_path / "nightly.toml"
    config.write_text("top_n = 5\nchunk_users = 77\nkeep_runs = 3\n[train]\nepochs = 4\npatience = 1\n")
    monkeypatch.setenv("NCF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NCF_TOP_N", "7")
    monkeypatch.setenv("NCF_TRAIN__EPOCHS", "6")
    s = _settings(["--config-file", str(config), "--chunk-users", "9", "--layers", "16,8", "--no-refit"])
    assert s.data_dir == tmp_path  # env
    assert s.top_n == 7  # env beats file
    assert s.chunk_users == 9  # flag beats file
    assert s.keep_runs == 3  # file beats default
    assert s.train.epochs == 6 and s.train.patience == 1  # nested: env and file merge
    assert s.ncf.layers == (16, 8) and s.ncf.factors == NCFConfig().factors
    assert s.refit is False
    assert s.gate == GateSettings()


def test_settings_reject_invalid_values(tmp_path):
    with pytest.raises(ValueError, match="top_n"):
        _settings(["--data-dir", str(tmp_path), "--top-n", "0"])
    with pytest.raises(ValueError, match="layers"):
        _settings(["--data-dir", str(tmp_path), "--layers", "7,3"])


def test_prune_keeps_newest_runs_and_never_the_latest_run(tmp_path):
    from batch.contract import LATEST, RUNS_DIR, STAGING_PREFIX, prune

    runs = tmp_path / RUNS_DIR
    ids = [f"2026112{d}T020000Z-abcdef" for d in range(1, 6)]
    for run_id in ids:
        (runs / run_id).mkdir(parents=True)
    (runs / f"{STAGING_PREFIX}{ids[-1]}x").mkdir()  # left by a killed run
    (tmp_path / LATEST).write_text(ids[0] + "\n")  # e.g. newer runs were refused or never pointed to
    deleted = prune(tmp_path, keep=2)
    assert sorted(deleted) == ids[1:3]
    assert sorted(p.name for p in runs.iterdir()) == [ids[0], *ids[3:]]


def test_available_cores_follow_omp_num_threads(monkeypatch):
    """Ray sets OMP_NUM_THREADS to an actor's reserved CPUs: the scorer's threads follow it, never above
    the cores the process may run on; unset, empty or not a positive integer, it is ignored."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    for ignored in ("", "0", "two", "-1"):
        monkeypatch.setenv("OMP_NUM_THREADS", ignored)
        assert available_cores() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 8))
    assert available_cores() == cores


def test_list_writer_writes_chunks_in_order_and_reraises_a_failed_write(tmp_path):
    """One row group per chunk in both files, in the order given; a write that fails (a table of another
    schema) surfaces at the next `write` or when the context closes, never silently."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batch.contract import RECOMMENDATIONS_SCHEMA
    from batch.recommend import ChunkLists, ListWriter, lists_table

    ids = np.arange(100, 110)

    def chunk(first: int) -> ChunkLists:
        users = np.arange(first, first + 2)
        items = np.tile(np.arange(3), (2, 1))
        table = lists_table(ids, ids, users, items, np.ones((2, 3), np.float32), np.full(2, 3))
        return ChunkLists(table, table.slice(0, 2), None)

    paths = tmp_path / "deep.parquet", tmp_path / "top.parquet"
    with (
        pq.ParquetWriter(paths[0], RECOMMENDATIONS_SCHEMA) as deep,
        pq.ParquetWriter(paths[1], RECOMMENDATIONS_SCHEMA) as top,
        ListWriter(deep, top) as writer,
    ):
        for first in (0, 2, 4):
            writer.write(chunk(first))
    expected = {paths[0]: np.repeat(ids[:6], 3), paths[1]: np.repeat(ids[[0, 2, 4]], 2)}
    for path, users in expected.items():
        parquet = pq.ParquetFile(path)
        assert [parquet.metadata.row_group(g).num_rows for g in range(3)] == [len(users) // 3] * 3
        np.testing.assert_array_equal(parquet.read().column("user_id").to_numpy(), users)
    wrong = pa.table({"x": [1]})
    with pq.ParquetWriter(tmp_path / "x.parquet", RECOMMENDATIONS_SCHEMA) as deep:
        writer = ListWriter(deep, deep)
        writer.write(ChunkLists(wrong, wrong, None))
        with pytest.raises(ValueError):
            writer.write(chunk(0))
        writer.__exit__(None, None, None)


@pytest.mark.parametrize("cores", ["1", "2"])
def test_scored_chunks_gives_each_range_its_own_writable_scores_in_order(cores, monkeypatch):
    """Scored ahead on another thread (more than one core) or in turn (one): what the caller gets is every
    range, in order, with a writable copy of the model's rows for exactly those users (never a view of the
    model's)."""
    from batch.recommend import scored_chunks

    monkeypatch.setenv("OMP_NUM_THREADS", cores)

    table = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)

    class Rows:
        def score_users(self, users):
            return table[users[0] : users[-1] + 1]  # a view, as a model may return

    got = list(scored_chunks(Rows(), [(0, 3), (3, 5), (5, 7)]))
    assert [users.tolist() for users, _ in got] == [[0, 1, 2], [3, 4], [5, 6]]
    for users, scores in got:
        np.testing.assert_array_equal(scores, table[users])
        scores[:] = -1
    assert table.min() == 0  # the model's rows untouched
    assert list(scored_chunks(Rows(), [])) == []
