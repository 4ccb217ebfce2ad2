"""Column names, defined once. Raw MovieLens ids (`user_id`, `movie_id`) live only at the edges;
dense 0-based indices (`user_idx`, `item_idx`) are what models and splits use."""

USER_ID = "user_id"
MOVIE_ID = "movie_id"
USER_IDX = "user_idx"
ITEM_IDX = "item_idx"
RATING = "rating"
TIMESTAMP = "timestamp"
LINE = "line"  # 1-based line number of the rating in its source file (tie-breaker, error messages)

TITLE = "title"
YEAR = "year"
GENRES = "genres"

RANK = "rank"
SCORE = "score"
SIMILAR_MOVIE_ID = "similar_movie_id"  # similar_movies.parquet: the neighbour of `movie_id`
