-- wrk script: GET <prefix><random user id 1..max_user>/recommendations?n=10 (args: prefix, max_user).
local prefix, max_user
function init(args)
  prefix = args[1]
  max_user = tonumber(args[2])
  math.randomseed(12345 + math.floor(os.clock() * 1000000))
end
function request()
  return wrk.format("GET", string.format("%s%d/recommendations?n=10", prefix, math.random(1, max_user)))
end
