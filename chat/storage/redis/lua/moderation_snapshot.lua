-- No ARGV.  The rules: owners, topics and locks (hashes, flat), then per
-- room with rules (the set moderated) its lower-case name, operators,
-- bans and mutes (flat hashes).
local rooms = {}
for i, r in ipairs(redis.call('SMEMBERS', prefix .. 'moderated')) do
  rooms[i] = {r, redis.call('HGETALL', prefix .. 'ops:' .. r),
    redis.call('HGETALL', prefix .. 'bans:' .. r), redis.call('HGETALL', prefix .. 'mutes:' .. r)}
end
return {redis.call('HGETALL', prefix .. 'owners'), redis.call('HGETALL', prefix .. 'topics'),
  redis.call('HGETALL', prefix .. 'locks'), rooms}
