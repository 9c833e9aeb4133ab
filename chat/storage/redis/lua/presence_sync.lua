-- ARGV: process id, heartbeat TTL in ms (0: the process is leaving),
-- timestamp, then every field the process holds.  Makes the process's
-- record say exactly that.
local id, ttl, ts = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local proc = prefix .. 'proc:' .. id
local want, has = {}, {}
for i = 4, #ARGV do want[ARGV[i]] = true end
for _, field in ipairs(redis.call('HKEYS', proc)) do
  has[field] = true
  if not want[field] then change(proc, field, -1, ts) end
end
for i = 4, #ARGV do
  if not has[ARGV[i]] then has[ARGV[i]] = true; change(proc, ARGV[i], 1, ts) end
end
if ttl > 0 then
  redis.call('SET', prefix .. 'alive:' .. id, '1', 'PX', ttl)
  redis.call('SADD', prefix .. 'procs', id)
else
  redis.call('DEL', prefix .. 'alive:' .. id)
  redis.call('SREM', prefix .. 'procs', id)
end
return 1
