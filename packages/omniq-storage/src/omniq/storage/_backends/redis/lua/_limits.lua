-- Flow limits (prepended to claim.lua and limits.lua after the prelude). A limited
-- task's hash holds 'lim' = key US cap US rate US per (empty parts: no such limit).
-- Per key: 'lim:r:<key>' zset of the ids claimed under it (score: claim time), whose
-- running count is read from the task hashes (running with a lease that has not
-- lapsed: a dead worker's slot frees when its lease does); 'lim:s:<key>' zset of
-- starts (score: start time, member id:generation); 'lim:keys' hash key -> spec.
local function lim_parse(lim)
  local parts = {}
  for part in string.gmatch(lim .. '\31', '([^\31]*)\31') do parts[#parts + 1] = part end
  return parts[1], tonumber(parts[2]), tonumber(parts[3]), tonumber(parts[4])
end
-- A standby (a task claimed ahead to run in a running claim's slot once that run
-- ends, standby.lua) holds 'sb' = the token (id:generation) of the claim it stands
-- by: while that claim runs too, the two take one slot.
local function lim_live(id)
  local h = redis.call('HMGET', tk(id), 's', 'le', 'tok')
  return h[1] == 'running' and h[2] and tonumber(h[2]) > NOW, h[3]
end
local function lim_running(key)
  local rk = P .. 'lim:r:' .. key
  local ids = redis.call('ZRANGE', rk, 0, -1)
  local n = 0
  for _, id in ipairs(ids) do
    local h = redis.call('HMGET', tk(id), 's', 'le', 'sb')
    if h[1] == 'running' and h[2] and tonumber(h[2]) > NOW then
      local shared = false
      if h[3] then
        local live, tok = lim_live(string.match(h[3], '^(.*):[^:]*$'))
        shared = live and tok == h[3]
      end
      if not shared then n = n + 1 end
    else
      redis.call('ZREM', rk, id)
    end
  end
  return n
end
-- Starts use the server's clock (TIME), not the caller's NOW: a caller delayed between
-- reading its clock and running the script must not stamp its starts in the past.
local LIM_T = nil
local function lim_now()
  if not LIM_T then
    local t = redis.call('TIME')
    LIM_T = tonumber(t[1]) + tonumber(t[2]) / 1e6
  end
  return LIM_T
end
-- The burst of a rate (RateSpec.burst / burst_window): at most
-- max(min(rate, 10), ceil(rate / 5)) starts
-- in any 0.8 * per * burst / rate seconds, so a window's starts come in small batches.
local function lim_burst(rate, per)
  local b = math.max(math.min(rate, 10), math.ceil(rate / 5))
  return b, 0.8 * per * b / rate
end
local function lim_starts(key, rate, per)
  local sk = P .. 'lim:s:' .. key
  local t = lim_now()
  redis.call('ZREMRANGEBYSCORE', sk, '-inf', t - per)
  local _, bw = lim_burst(rate, per)
  return redis.call('ZCARD', sk), redis.call('ZCOUNT', sk, '(' .. (t - bw), '+inf')
end
-- Seconds until the first rate key a claim held tasks back for has budget again (nil:
-- none was held back by its rate): the caller waits that long instead of polling. Not
-- told when a key was held back by its cap (LIM_CAPPED): a slot frees at no known time.
local LIM_WAIT = nil
local LIM_CAPPED = false
local function lim_wait(key, rate, per, u)
  local sk = P .. 'lim:s:' .. key
  local t = lim_now()
  local at = t
  if u[2] >= rate then  -- the window frees when its (starts - rate + 1)-th oldest ages out
    local r = redis.call('ZRANGE', sk, u[2] - rate, u[2] - rate, 'WITHSCORES')
    if r[2] then at = tonumber(r[2]) + per end
  end
  local b, bw = lim_burst(rate, per)
  if u[3] >= b then  -- the burst frees when its b-th newest start ages out of it
    local r = redis.call('ZREVRANGE', sk, b - 1, b - 1, 'WITHSCORES')
    if r[2] then at = math.max(at, tonumber(r[2]) + bw) end
  end
  local d = math.max(0, at - t)
  if not LIM_WAIT or d < LIM_WAIT then LIM_WAIT = d end
end
-- Usage per key within one script: {running, starts, recent starts, wait computed},
-- counted once, then kept current.
local lim_use = {}
local function lim_admit(lim)
  local key, cap, rate, per = lim_parse(lim)
  local u = lim_use[key]
  if not u then
    u = {0, 0, 0, false}
    if cap then u[1] = lim_running(key) end
    if rate then u[2], u[3] = lim_starts(key, rate, per) end
    lim_use[key] = u
  end
  if cap and u[1] >= cap then
    LIM_CAPPED = true
    return nil
  end
  if rate and (u[2] >= rate or u[3] >= lim_burst(rate, per)) then
    if not u[4] then
      u[4] = true
      lim_wait(key, rate, per, u)
    end
    return nil
  end
  return key, rate, per
end
-- Starts counted by this script, re-stamped when it ends (lim_stamp): the tasks start
-- after the reply, so the stamp is the script's end, however long its scan took. The
-- checks above hold for the later stamp too (nothing ran in between).
local LIM_NEW = {}
local function lim_stamp()
  if not LIM_T or #LIM_NEW == 0 then return '' end
  local t = redis.call('TIME')
  local at = tonumber(t[1]) + tonumber(t[2]) / 1e6
  for _, e in ipairs(LIM_NEW) do redis.call('ZADD', e[1], at, e[2]) end
  return string.format('%.6f', at)
end
local function lim_started(key, id, g, rate, per)
  local u = lim_use[key]
  u[1] = u[1] + 1
  u[2] = u[2] + 1
  u[3] = u[3] + 1
  redis.call('ZADD', P .. 'lim:r:' .. key, NOW, id)
  if rate then
    redis.call('ZADD', P .. 'lim:s:' .. key, lim_now(), id .. ':' .. g)
    LIM_NEW[#LIM_NEW + 1] = {P .. 'lim:s:' .. key, id .. ':' .. g}
    redis.call('PEXPIRE', P .. 'lim:s:' .. key, math.ceil(per * 1000) + 1000)
  end
end
