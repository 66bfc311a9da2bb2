-- ARGV[3] queue: pause it (claims and handovers skip it); 1 if it was not paused.
return redis.call('SADD', P .. 'paused', ARGV[3])
