-- ARGV: lower-case user, the token's hash, its expiry, now (integer POSIX
-- seconds).  Keeps the token, drops the account's expired ones, and has
-- the hash expire with its latest token, all at once: two processes
-- adding tokens of one account must not leave it expiring with the
-- earlier of theirs.
local key = '{prefix}' .. 'tokens:' .. ARGV[1]
local now = tonumber(ARGV[4])
redis.call('HSET', key, ARGV[2], ARGV[3])
local fields = redis.call('HGETALL', key)
local latest = nil
for i = 1, #fields, 2 do
  local expires = tonumber(fields[i + 1])
  if expires == nil or expires <= now then
    redis.call('HDEL', key, fields[i])
  elseif latest == nil or expires > latest then
    latest = expires
  end
end
if latest ~= nil then
  redis.call('EXPIREAT', key, latest)
end
return 1
