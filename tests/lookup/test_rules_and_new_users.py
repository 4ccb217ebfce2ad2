"""Similar movies, history, request-time rules and new users (POST /v1/recommendations) through Flask's
test client, against the run's Parquet read with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import CANDIDATES_DEPTH, HISTORY_DEPTH, SIMILAR_K

from batch.contract import CANDIDATES, HISTORY, MOVIES, POPULAR, SIMILAR_MOVIES, run_dir
from lookup_service.rules import NeighbourLists, fold_in


@pytest.fixture(params=["mapped", "parquet"])
def served_from(request) -> str:
    return request.param


@pytest.fixture
def tables(output_dir, run_id) -> dict[str, pd.DataFrame]:
    run = run_dir(output_dir, run_id)
    return {
        name: pd.read_parquet(run / name) for name in (CANDIDATES, MOVIES, POPULAR, SIMILAR_MOVIES, HISTORY)
    }


def ids(body: dict, key: str = "recommendations") -> list[int]:
    return [m["movie_id"] for m in body[key]]


def test_similar_movies_are_the_published_list_and_never_the_movie(client, tables):
    similar = tables[SIMILAR_MOVIES]
    for movie in (6, 30, 117):
        body = client.get(f"/v1/movies/{movie}/similar?n={SIMILAR_K}").json
        expected = similar[similar.movie_id == movie].sort_values("rank")
        assert ids(body, "similar") == expected.similar_movie_id.tolist()
        assert [m["score"] for m in body["similar"]] == pytest.approx(expected.score.tolist())
        assert movie not in ids(body, "similar") and body["complete"] is True
    assert len(client.get("/v1/movies/6/similar?n=2").json["similar"]) == 2
    lonely = client.get("/v1/movies/120/similar?n=3").json  # the last movie has no list
    assert lonely["similar"] == [] and lonely["complete"] is False


@pytest.mark.parametrize("url", ["/v1/movies/7/similar", "/v1/movies/999/similar?n=2"])
def test_similar_of_an_unknown_movie_is_404(client, url):
    response = client.get(url)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_similar_n_above_k_is_422_naming_n(client):
    response = client.get(f"/v1/movies/6/similar?n={SIMILAR_K + 1}")
    assert response.status_code == 422 and "n must be between 1 and" in response.json["error"]["message"]


def movie_facts(tables) -> pd.DataFrame:
    return tables[MOVIES].set_index("movie_id")


@pytest.mark.parametrize(
    "query, keep",
    [
        ("genre=Drama", lambda m: "Drama" in m.genres),
        ("exclude_genre=Drama", lambda m: "Drama" not in m.genres),
        ("year_from=1995&year_to=2000", lambda m: m.year is not None and 1995 <= m.year <= 2000),
        (
            "genre=Comedy&year_to=1990",
            lambda m: "Comedy" in m.genres and m.year is not None and m.year <= 1990,
        ),
        ("exclude=6&exclude=9&exclude=12", lambda m: m.name not in (6, 9, 12)),
    ],
)
def test_rules_filter_within_the_candidate_list_in_its_order(client, tables, query, keep):
    facts = movie_facts(tables)
    deep = tables[CANDIDATES]
    for user in (1, 7, 30):
        body = client.get(f"/v1/users/{user}/recommendations?n=10&{query}").json
        listed = deep[deep.user_id == user].sort_values("rank").movie_id.tolist()
        passing = [
            m for m in listed if keep(pd.Series({**facts.loc[m].to_dict(), "year": _year(facts, m)}, name=m))
        ]
        assert ids(body) == passing[:10]
        assert [r["rank"] for r in body["recommendations"]] == list(
            range(1, len(body["recommendations"]) + 1)
        )
        assert body["complete"] == (len(passing) >= 10)


def _year(facts: pd.DataFrame, movie: int) -> int | None:
    year = facts.loc[movie, "year"]
    return None if pd.isna(year) else int(year)


def test_rules_reach_beyond_the_top_n_and_say_when_fewer_remain(client, tables):
    deep = tables[CANDIDATES]
    listed = deep[deep.user_id == 7].sort_values("rank").movie_id.tolist()
    assert len(listed) == CANDIDATES_DEPTH
    body = client.get("/v1/users/7/recommendations?n=20&genre=Action").json
    facts = movie_facts(tables)
    action = [m for m in listed if "Action" in facts.loc[m].genres]
    assert ids(body) == action[:20]
    assert len(action) < 20 and body["complete"] is False  # 1 in 2 movies is Action: fewer than 20 remain
    assert any(deep[(deep.user_id == 7) & (deep.movie_id.isin(ids(body)))]["rank"] > 10)


def test_rules_apply_to_the_popular_fallback_and_unfiltered_answers_are_unchanged(client, tables):
    popular = tables[POPULAR].sort_values("rank").movie_id.tolist()
    facts = movie_facts(tables)
    body = client.get("/v1/users/5000/recommendations?n=5&exclude_genre=Comedy").json
    assert body["source"] == "popular"
    assert ids(body) == [m for m in popular if "Comedy" not in facts.loc[m].genres][:5]
    plain = client.get("/v1/users/7/recommendations?n=5").json
    deep = tables[CANDIDATES]
    assert ids(plain) == deep[deep.user_id == 7].sort_values("rank").movie_id.head(5).tolist()
    assert plain["complete"] is True


@pytest.mark.parametrize(
    "url, field",
    [
        ("/v1/users/7/recommendations?genre=Western", "genre"),
        ("/v1/users/7/recommendations?exclude_genre=Western", "exclude_genre"),
        ("/v1/users/7/recommendations?exclude=0", "exclude"),
        ("/v1/users/7/recommendations?exclude=abc", "exclude"),
        ("/v1/users/7/recommendations?year_from=soon", "year_from"),
        ("/v1/movies/6/similar?genre=", "genre"),
        ("/v1/movies/6/similar?year_to=-1", "year_to"),
    ],
)
def test_bad_rules_are_422_naming_the_field(client, url, field):
    response = client.get(url)
    assert response.status_code == 422
    assert response.json["error"]["message"].startswith(field)


def test_history_is_the_published_newest_first_list(client, tables):
    history = tables[HISTORY]
    for user in (1, 2):
        body = client.get(f"/v1/users/{user}/history").json
        expected = history[history.user_id == user].sort_values("rank")
        assert ids(body, "history") == expected.movie_id.tolist()
        assert [m["timestamp"] for m in body["history"]] == expected.timestamp.tolist()
        assert len(body["history"]) == HISTORY_DEPTH - (user - 1) % 2
        assert body["history"][0]["title"]
    assert client.get("/v1/users/5000/history").status_code == 404


def expected_fold_in(tables, liked, exclude=(), n=10, keep=lambda m: True) -> list[int]:
    """Brute force: summed similarity over the liked movies' lists (ties: popularity, id), popular fill."""
    similar = tables[SIMILAR_MOVIES]
    rows = similar[similar.movie_id.isin(liked)]
    totals = rows.groupby("similar_movie_id").score.sum()
    popular = tables[POPULAR].sort_values("rank").movie_id.tolist()
    rank = {m: i for i, m in enumerate(popular)}
    banned = set(liked) | set(exclude)
    scored = [m for m in totals.index if m not in banned and keep(m)]
    scored.sort(key=lambda m: (-totals[m], rank.get(m, len(rank) + 10**6), m))
    chosen = scored[:n]
    fill = [m for m in popular if m not in banned and m not in chosen and keep(m)]
    return chosen + fill[: n - len(chosen)]


def test_new_user_from_liked_movies_matches_brute_force(client, tables):
    liked = [6, 30, 60]
    body = client.post("/v1/recommendations", json={"liked": liked, "n": 8}).json
    assert body["source"] == "similar" and body["unknown_liked"] == []
    assert ids(body) == expected_fold_in(tables, liked, n=8)
    assert not set(ids(body)) & set(liked)
    scores = [m["score"] for m in body["recommendations"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_new_user_never_gets_liked_or_excluded_movies_and_rules_apply(client, tables):
    liked, exclude = [6, 9], [12, 15, 18, 21]
    facts = movie_facts(tables)
    body = client.post(
        "/v1/recommendations", json={"liked": liked, "exclude": exclude, "n": 10, "genre": "Drama"}
    ).json
    keep = lambda m: "Drama" in facts.loc[m].genres  # noqa: E731
    assert ids(body) == expected_fold_in(tables, liked, exclude, 10, keep)
    assert not set(ids(body)) & set(liked + exclude)
    assert all("Drama" in m["genres"] for m in body["recommendations"])


def test_new_user_with_nothing_known_gets_popular_movies(client, tables):
    popular = tables[POPULAR].sort_values("rank").movie_id.tolist()
    for liked in ([], [7, 8], [120]):  # nothing, unknown ids, a movie without a similar list
        body = client.post("/v1/recommendations", json={"liked": liked, "n": 5}).json
        assert body["source"] == "popular"
        assert ids(body) == [m for m in popular if m not in liked][:5]
        assert all(m["score"] == 0 for m in body["recommendations"])
    assert client.post("/v1/recommendations", json={"liked": [7, 8, 6]}).json["unknown_liked"] == [7, 8]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"liked": list(range(1, 102))}, "liked"),
        ({"liked": [0]}, "liked.0"),
        ({"liked": ["x"]}, "liked.0"),
        ({"liked": [2**31]}, "liked.0"),
        ({"liked": [6], "n": 0}, "n"),
        ({"liked": [6], "n": 21}, "n"),
        ({"liked": [6], "exclude": [-3]}, "exclude.0"),
        ({"liked": [6], "surprise": 1}, "surprise"),
        ({}, "liked"),
        ([6, 9], "body"),
    ],
)
def test_new_user_input_is_bounded_and_422_names_the_field(client, body, field):
    response = client.post("/v1/recommendations", json=body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_parameter"
    assert response.json["error"]["message"].startswith(field)


def test_new_user_body_must_be_json(client):
    response = client.post("/v1/recommendations", data="liked=6", content_type="text/plain")
    assert response.status_code == 422 and response.json["error"]["message"].startswith("body")
    assert client.get("/v1/recommendations").status_code == 405


def test_fold_in_work_is_bounded_by_the_liked_lists():
    """A liked movie's list is read by offsets only; movies of other lists never appear."""
    lists = NeighbourLists(
        offsets=np.array([0, 2, 2, 4, 4]),
        movie_pos=np.array([1, 3, 0, 1], dtype=np.int32),
        scores=np.array([0.9, 0.1, 0.5, 0.4]),
    )
    popular = np.array([3, 2, 1, 0])
    rank = np.array([3, 2, 1, 0])
    everything = lambda p: np.ones(len(p), dtype=bool)  # noqa: E731
    pos, scores, from_lists = fold_in(lists, popular, rank, np.array([0, 2]), 3, everything)
    # movie 1: 0.9 (from 0) + 0.4 (from 2); movie 3: 0.1; movie 0 is liked; nothing left to fill with
    assert pos.tolist() == [1, 3] and from_lists == 2
    assert scores.tolist() == pytest.approx([1.3, 0.1])
    pos, scores, from_lists = fold_in(lists, popular, rank, np.array([1]), 2, everything)
    assert pos.tolist() == [3, 2] and from_lists == 0 and scores.tolist() == [0, 0]  # no list: popular


@pytest.mark.parametrize("liked", [[6, 30, 60], [], [7, 6, 7000], [120]])
def test_new_user_bodies_equal_the_pydantic_model_byte_for_byte(app, client, liked):
    """The POST body is rendered from the movie fragments; it must be what `NewUserResponse` writes."""
    from batch.serving_arrays import short_float32
    from lookup_service.schemas import NewUserResponse, RecommendedMovie

    store = app.extensions["ncf"]["holder"].store
    positions = store.movie_index.positions(np.array(liked, dtype=np.int64))
    pos, scores, from_lists = fold_in(
        store.similar,
        store.popular.movie_pos,
        store.facts.popular_rank,
        positions[positions >= 0],
        7,
        lambda c: np.ones(len(c), dtype=bool),
    )
    expected = NewUserResponse(
        run_id=store.run_id,
        source="similar" if from_lists else "popular",
        unknown_liked=sorted({m for m, p in zip(liked, positions.tolist(), strict=True) if p < 0}),
        recommendations=[
            RecommendedMovie(**store.movies[p], rank=r, score=s)
            for r, (p, s) in enumerate(
                zip(pos.tolist(), short_float32(scores.astype(np.float32)).tolist(), strict=True), start=1
            )
        ],
        complete=len(pos) == 7,
    )
    response = client.post("/v1/recommendations", json={"liked": liked, "n": 7})
    assert response.get_data() == expected.model_dump_json().encode()


def test_a_run_of_an_older_job_still_answers_without_similar_movies_or_history(output_dir):
    """No candidates, similar movies or history in the run: lists top_n deep, similar and history 404,
    new users get popular movies."""
    from synthetic_runs import write_run

    from lookup_service.app import create_app
    from lookup_service.settings import ServiceSettings

    write_run(output_dir, seed=3)
    client = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0)).test_client()
    assert client.get("/v1/movies/6/similar").status_code == 404
    assert client.get("/v1/users/1/history").status_code == 404
    body = client.post("/v1/recommendations", json={"liked": [6], "n": 3}).json
    assert body["source"] == "popular" and len(body["recommendations"]) == 3
    filtered = client.get("/v1/users/1/recommendations?n=20&genre=Drama").json
    assert 0 < len(filtered["recommendations"]) < 20 and filtered["complete"] is False
