-- wrk script for bench/load_test_endpoints.py (args: mode, max_user, movie id file).
-- modes: user (GET a random user's top 10), user_filtered (the same with genre=Drama&year_from=1990),
-- similar (GET a random movie's 10 most similar), history (GET a random user's history),
-- new_user (POST /v1/recommendations with 5 random liked movies).
local mode, max_user
local movies = {}
function init(args)
  mode = args[1]
  max_user = tonumber(args[2])
  for line in io.lines(args[3]) do movies[#movies + 1] = line end
  math.randomseed(12345 + math.floor(os.clock() * 1000000))
end
local function movie() return movies[math.random(1, #movies)] end
function request()
  if mode == "user" then
    return wrk.format("GET", string.format("/v1/users/%d/recommendations?n=10", math.random(1, max_user)))
  elseif mode == "user_filtered" then
    return wrk.format("GET", string.format(
      "/v1/users/%d/recommendations?n=10&genre=Drama&year_from=1990", math.random(1, max_user)))
  elseif mode == "similar" then
    return wrk.format("GET", string.format("/v1/movies/%s/similar?n=10", movie()))
  elseif mode == "history" then
    return wrk.format("GET", string.format("/v1/users/%d/history", math.random(1, max_user)))
  else
    local body = string.format('{"liked": [%s, %s, %s, %s, %s], "n": 10}', movie(), movie(), movie(), movie(), movie())
    return wrk.format("POST", "/v1/recommendations", {["Content-Type"] = "application/json"}, body)
  end
end
