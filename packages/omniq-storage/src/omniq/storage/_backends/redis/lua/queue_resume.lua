-- ARGV[3] queue: resume it and wake the workers waiting on it; 1 if it was paused.
local q = ARGV[3]
local n = redis.call('SREM', P .. 'paused', q)
if n == 1 then notify[q] = true end
publish()
return n
