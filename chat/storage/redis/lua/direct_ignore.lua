-- ARGV: lower-case user, lower-case other, limit.  Adds other to the
-- user's ignore set unless it holds limit names already (1 if it is, or
-- was, in it; 0 if full).
local prefix = '{prefix}'
local key = prefix .. 'ignores:' .. ARGV[1]
if redis.call('SISMEMBER', key, ARGV[2]) == 1 then return 1 end
if redis.call('SCARD', key) >= tonumber(ARGV[3]) then return 0 end
redis.call('SADD', key, ARGV[2])
return 1
