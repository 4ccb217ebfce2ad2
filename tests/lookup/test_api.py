"""Every endpoint and error of the lookup service through Flask's test client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from synthetic_runs import TRICKY_TITLE

from batch.contract import MOVIES, POPULAR, RECOMMENDATIONS, run_dir
from lookup_service.app import create_app
from lookup_service.schemas import RecommendationsResponse, RecommendedMovie
from lookup_service.settings import ServiceSettings
from lookup_service.store import RunStore


@pytest.fixture(params=["mapped", "parquet"])
def served_from(request) -> str:
    """Every test here runs on a run with served arrays and on one without (`conftest.run_id`)."""
    return request.param


def test_recommendations_for_a_known_user_match_the_parquet(client, output_dir, run_id):
    response = client.get("/v1/users/7/recommendations?n=5")
    assert response.status_code == 200
    assert response.headers["X-Run-Id"] == run_id
    body = response.json
    assert (body["user_id"], body["run_id"], body["source"]) == (7, run_id, "model")
    recs = pq.read_table(run_dir(output_dir, run_id) / RECOMMENDATIONS).to_pandas()
    expected = recs[recs.user_id == 7].sort_values("rank").head(5)
    assert [r["movie_id"] for r in body["recommendations"]] == expected.movie_id.tolist()
    assert [r["rank"] for r in body["recommendations"]] == [1, 2, 3, 4, 5]
    assert [r["score"] for r in body["recommendations"]] == pytest.approx(expected.score.tolist())
    movies = pq.read_table(run_dir(output_dir, run_id) / MOVIES).to_pandas().set_index("movie_id")
    first = body["recommendations"][0]
    assert first["title"] == movies.loc[first["movie_id"], "title"]
    assert first["genres"] == list(movies.loc[first["movie_id"], "genres"])


def test_default_n_is_ten_and_n_up_to_top_n_is_allowed(client):
    assert len(client.get("/v1/users/1/recommendations").json["recommendations"]) == 10
    assert len(client.get("/v1/users/1/recommendations?n=20").json["recommendations"]) == 20


def test_unknown_user_gets_the_popular_list(client, output_dir, run_id):
    body = client.get("/v1/users/5000/recommendations?n=3").json
    assert body["source"] == "popular"
    popular = pq.read_table(run_dir(output_dir, run_id) / POPULAR).to_pandas().sort_values("rank")
    assert [r["movie_id"] for r in body["recommendations"]] == popular.movie_id.head(3).tolist()


def test_fallback_none_turns_an_unknown_user_into_404(client):
    response = client.get("/v1/users/5000/recommendations?fallback=none")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.get("/v1/users/3/recommendations?fallback=none").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/v1/users/abc/recommendations",
        "/v1/users/1.5/recommendations",
        "/v1/users/0/recommendations",
        "/v1/users/3/recommendations?n=0",
        "/v1/users/3/recommendations?n=21",
        "/v1/users/3/recommendations?n=ten",
        "/v1/users/3/recommendations?fallback=maybe",
        "/v1/movies/xyz",
        "/v1/movies/99999999999",
    ],
)
def test_invalid_parameters_are_422_json(client, url):
    response = client.get(url)
    assert response.status_code == 422
    assert response.mimetype == "application/json"
    assert response.json["error"]["code"] == "invalid_parameter"
    assert response.json["error"]["message"]


def test_movie_lookup(client, run_id):
    response = client.get("/v1/movies/6")
    assert response.status_code == 200
    assert response.json == {
        "movie_id": 6,
        "title": "Movie 6 (1986)",
        "year": 1986,
        "genres": ["Drama", "Sci-Fi"],
        "run_id": run_id,
    }
    assert client.get("/v1/movies/3").json["year"] is None


def test_unknown_movie_is_404(client):
    response = client.get("/v1/movies/7")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_model_endpoint_reports_the_manifest_and_metrics(client, run_id):
    body = client.get("/v1/model").json
    assert body["run_id"] == run_id
    assert body["engine"] == "numpy"
    assert body["config"] == {"factors": 8, "layers": [16, 8]}
    assert body["top_n"] == 20
    assert body["metrics"]["test"]["sampled"]["hr@10"] == 0.5


def test_health_and_readiness(client, run_id):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "ready"
    assert ready.json["run_id"] == run_id


def test_unknown_path_is_404_json_and_wrong_method_is_405_json(client):
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    response = client.post("/v1/users/3/recommendations")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_before_any_publish_everything_but_healthz_is_503(output_dir):
    client = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0)).test_client()
    assert client.get("/healthz").status_code == 200
    for url in ["/readyz", "/v1/model", "/v1/users/1/recommendations", "/v1/movies/6"]:
        response = client.get(url)
        assert response.status_code == 503, url
        assert "X-Run-Id" not in response.headers
    assert client.get("/readyz").json["reason"].startswith("no run published yet")
    assert client.get("/v1/model").json["error"]["code"] == "not_ready"


def test_an_unexpected_error_is_a_json_500_without_stack_trace(client, monkeypatch):
    def explode(self, user_id):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(RunStore, "for_user", explode)
    response = client.get("/v1/users/3/recommendations")
    assert response.status_code == 500
    assert response.json == {"error": {"code": "internal_error", "message": "internal server error"}}
    assert b"secret" not in response.data and b"Traceback" not in response.data


def test_openapi_document_is_generated_from_the_models(client):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert set(paths) >= {
        "/v1/users/{user_id}/recommendations",
        "/v1/movies/{movie_id}",
        "/v1/model",
        "/healthz",
        "/readyz",
    }
    schemas = doc["components"]["schemas"]
    assert set(schemas["RecommendedMovie"]["properties"]) == {
        "movie_id",
        "title",
        "year",
        "genres",
        "rank",
        "score",
    }
    params = {p["name"] for p in paths["/v1/users/{user_id}/recommendations"]["get"]["parameters"]}
    assert params == {"user_id", "n", "fallback", "genre", "exclude_genre", "exclude", "year_from", "year_to"}
    similar = {p["name"] for p in paths["/v1/movies/{movie_id}/similar"]["get"]["parameters"]}
    assert similar == {"movie_id", "n", "genre", "exclude_genre", "exclude", "year_from", "year_to"}
    post = paths["/v1/recommendations"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schemas[body]["properties"]["liked"]["maxItems"] == 100
    assert "/v1/users/{user_id}/history" in paths


def test_html_page_is_served_without_external_assets(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<form" in page and "/v1/users/" in page
    assert "http://" not in page and "https://" not in page


def test_the_service_never_imports_tensorflow(output_dir, run_id):
    """In a fresh interpreter: other tests in this process may have imported TensorFlow themselves.
    Nor pandas (~40 MB per worker; pyarrow's `to_numpy` would pull it in)."""
    code = (
        "import sys; from pathlib import Path\n"
        "import batch\n"
        "assert 'pyarrow' not in sys.modules, 'batch/__init__ must stay import-light'\n"
        "from lookup_service.app import create_app\n"
        "from lookup_service.settings import ServiceSettings\n"
        f"settings = ServiceSettings(output_dir=Path({str(output_dir)!r}), reload_interval_seconds=0)\n"
        "app = create_app(settings)\n"
        "assert app.extensions['ncf']['holder'].store is not None\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'pandas'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path.cwd())
    assert result.returncode == 0, result.stderr


def reference_body(store: RunStore, user_id: int, n: int) -> RecommendationsResponse:
    """The response built the slow, obvious way: pydantic models from the store's arrays."""
    ranked = store.for_user(user_id)
    source = "model" if ranked is not None else "popular"
    ranked = ranked or store.popular
    pairs = zip(ranked.movie_pos[:n].tolist(), ranked.scores[:n].tolist(), strict=True)
    return RecommendationsResponse(
        user_id=user_id,
        run_id=store.run_id,
        source=source,
        recommendations=[
            RecommendedMovie(**store.movies[p], rank=rank, score=s)
            for rank, (p, s) in enumerate(pairs, start=1)
        ],
    )


@pytest.mark.parametrize("body_cache_mb", [0, 16])
def test_rendered_bodies_equal_the_pydantic_model_for_every_user_and_n(
    output_dir, run_id, body_cache_mb, served_from
):
    """The hot endpoint renders JSON from per-movie fragments (and, with the cache on, serves the rendered
    bytes again); first and repeated answers must equal `RecommendationsResponse` byte for byte."""
    settings = ServiceSettings(output_dir=output_dir, reload_interval_seconds=0, body_cache_mb=body_cache_mb)
    app = create_app(settings)
    client = app.test_client()
    store = app.extensions["ncf"]["holder"].store
    assert store.memory_mapped == (served_from == "mapped")
    assert any(m["title"] == TRICKY_TITLE for m in store.movies)
    for user_id in [*store.users.ids.tolist(), 5000, 31]:
        for n, query in [(10, ""), (1, "?n=1"), (2, "?n=2"), (7, "?n=7&fallback=popular"), (20, "?n=20")]:
            expected = reference_body(store, user_id, n)
            for _ in range(2):  # a miss, then (cache on, known user) a hit
                response = client.get(f"/v1/users/{user_id}/recommendations{query}")
                assert response.status_code == 200
                assert response.headers["X-Run-Id"] == run_id
                assert response.mimetype == "application/json"
                assert response.get_data() == expected.model_dump_json().encode()
    assert len(store.bodies) == (0 if body_cache_mb == 0 else len(store.users.ids) * 5)


def test_cached_bodies_do_not_bypass_fallback_or_n_checks(client):
    assert client.get("/v1/users/3/recommendations?n=5").status_code == 200
    assert client.get("/v1/users/3/recommendations?n=5&fallback=none").status_code == 200
    assert client.get("/v1/users/3/recommendations?n=21").status_code == 422
    assert client.get("/v1/users/5000/recommendations?n=5").json["source"] == "popular"
    assert client.get("/v1/users/5000/recommendations?n=5&fallback=none").status_code == 404


def test_memoised_queries_still_reject_invalid_ones(client):
    for n in range(1, 21):  # fill the memo with valid query strings
        assert client.get(f"/v1/users/3/recommendations?n={n}").status_code == 200
    for _ in range(2):
        response = client.get("/v1/users/3/recommendations?n=0")
        assert response.status_code == 422
        assert response.json["error"]["code"] == "invalid_parameter"
        assert client.get("/v1/users/3/recommendations?fallback=maybe").status_code == 422
    for i in range(300):  # more distinct strings than the memo holds: still answered correctly
        response = client.get(f"/v1/users/3/recommendations?n=4&x={i}")
        assert len(response.json["recommendations"]) == 4
