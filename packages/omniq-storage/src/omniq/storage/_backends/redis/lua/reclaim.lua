local out = {}
reclaim(out, redis.call('SMEMBERS', P .. 'queues'))
flush()
publish()
return out
