-- The results of the tasks a cancel/expire ended, written by the script that ended
-- them. spec: msgpack array {status, error type, error message, cascade error type,
-- cascade error message, retention seconds ('' = kept), result TTL ms ('' = none),
-- 1 when the message is the expiry's "task expired at <exp> before it started" (exp
-- as stored at enqueue: Python's repr of the float)}. Each result is the msgpack map
-- the result store decodes (a TaskResult, finished NOW); waiters get one 'R:'
-- notification for all of them.
local function store_ended(spec_blob, roots, cascaded)
  local spec = cmsgpack.unpack(spec_blob)
  local px = spec[7]
  local exp = nil
  if px ~= '' then exp = NOW + tonumber(spec[6]) end
  local ids = {}
  local function put(id, status, etype, emsg, attempts, queue)
    local r = {task_id = id, status = status, finished_at = NOW,
               error = {type = etype, message = emsg}}
    if attempts and attempts > 0 then r.attempts = attempts end
    if queue and queue ~= '' then r.queue = queue end
    local key = P .. 'res:' .. id
    if exp then
      r.expires_at = exp
      redis.call('SET', key, cmsgpack.pack(r), 'PX', px)
      zadd(P .. 'rexp', exp, id)
    else
      redis.call('SET', key, cmsgpack.pack(r))
      zrem(P .. 'rexp', id)
    end
    ids[#ids + 1] = id
  end
  for _, id in ipairs(roots) do
    local h = redis.call('HMGET', tk(id), 'a', 'q', 'exp')
    local msg = spec[3]
    if spec[8] == 1 then msg = 'task expired at ' .. (h[3] or '') .. ' before it started' end
    put(id, spec[1], spec[2], msg, tonumber(h[1]), h[2])
  end
  for _, c in ipairs(cascaded) do
    put(c[1], 'cancelled', spec[4], spec[5], tonumber(c[2]), redis.call('HGET', tk(c[1]), 'q'))
  end
  if #ids > 0 then redis.call('PUBLISH', P .. 'chan', 'R:' .. table.concat(ids, '\31')) end
end
