-- ARGV: process id, TTL in ms, timestamp.  Keeps this process alive, and
-- takes away the processes whose heartbeat has expired.  Returns whether
-- this process had been taken away itself (it was cut off for too long:
-- it must then record its presence again), and the ids taken away now.
local id = ARGV[1]
redis.call('SET', prefix .. 'alive:' .. id, '1', 'PX', ARGV[2])
local lost = redis.call('SADD', prefix .. 'procs', id)
local dead = {}
for _, other in ipairs(redis.call('SMEMBERS', prefix .. 'procs')) do
  if redis.call('EXISTS', prefix .. 'alive:' .. other) == 0 then
    local proc = prefix .. 'proc:' .. other
    for _, field in ipairs(redis.call('HKEYS', proc)) do change(proc, field, -1, ARGV[3]) end
    redis.call('DEL', proc)
    redis.call('SREM', prefix .. 'procs', other)
    dead[#dead + 1] = other
  end
end
return {lost, dead}
