-- Every limit key: {key, running, cap or '', rate or '', per or '', starts}.
local out = {}
local all = redis.call('HGETALL', P .. 'lim:keys')
for i = 1, #all, 2 do
  local key, cap, rate, per = lim_parse(all[i + 1])
  local starts = 0
  if rate then starts = lim_starts(key, rate, per) end
  out[#out + 1] = {key, lim_running(key), cap or '', rate or '', per or '', starts}
end
return out
